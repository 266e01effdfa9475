package node

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/mempool"
	"github.com/plugchain/plug/chain/tx"
)

// offlineNode is a node whose pool and candidates can be filled by hand: no
// network, so a fetch has nobody to ask.
func offlineNode(t *testing.T) (*testNet, *Node) {
	t.Helper()
	tn := &testNet{t: t, admin: seedKey(t, 200)}
	nd := &Node{pool: mempool.New()}
	nd.app = &app{n: nd}
	return tn, nd
}

// TestCompactRebuildsExactBytes: a block rebuilt from its compact form encodes
// exactly as the proposer's, for a block with transactions, an empty list and
// a null list; and Validate's decode takes the rebuilt block, not a new decode.
func TestCompactRebuildsExactBytes(t *testing.T) {
	tn, nd := offlineNode(t)
	var txs []*tx.Tx
	for i := uint64(1); i <= 5; i++ {
		x := tn.transfer(i, seedKey(t, 50).Public().Address(), i)
		txs = append(txs, x)
		// The pool holds a decoded copy, which encodes by copying its own
		// bytes; the expected block below encodes x field by field.
		enc, err := x.Encode()
		if err != nil {
			t.Fatal(err)
		}
		d, err := tx.Decode(enc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nd.pool.Add(d, nil, zeroNonces{}); err != nil {
			t.Fatal(err)
		}
	}
	hdr := block.Header{ChainID: "nodetest", Height: 7, Time: 1234}
	for name, list := range map[string][]*tx.Tx{"txs": txs, "empty": {}, "null": nil} {
		b := &block.Block{Header: hdr, Txs: list}
		want, err := b.Encode()
		if err != nil {
			t.Fatal(err)
		}
		c, err := compact(b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := nd.hydrate("", c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: rebuilt block encodes differently:\n got %x\nwant %x", name, got, want)
		}
		rb, err := nd.decodeBlock(got)
		if err != nil || rb.Header != hdr || len(rb.Txs) != len(list) {
			t.Fatalf("%s: decodeBlock = %v, %v", name, rb, err)
		}
		if len(list) > 0 && rb.Txs[0] != nd.pool.Get(mustID(t, list[0])) {
			t.Fatalf("%s: decodeBlock decoded again instead of taking the rebuilt block", name)
		}
	}
}

// TestCompactMissingIgnored: a compact block naming a transaction this node
// lacks, with no peer to fetch it from, is ignored (not held against the
// sender), and the machine never sees it.
func TestCompactMissingIgnored(t *testing.T) {
	tn, nd := offlineNode(t)
	x := tn.transfer(1, seedKey(t, 50).Public().Address(), 1)
	b := &block.Block{Header: block.Header{ChainID: "nodetest", Height: 1, Time: 1}, Txs: []*tx.Tx{x}}
	c, err := compact(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nd.hydrate("", c); !errors.Is(err, errMissingTxs) {
		t.Fatalf("hydrate without the transaction: %v, want errMissingTxs", err)
	}
	nd.app.remember(b, &block.Outcome{})
	msg := &consensus.Message{Proposal: &consensus.Proposal{ChainID: "nodetest", Height: 1, BlockID: b.Header.Hash(), Block: encodeOrFail(t, b)}}
	wire := nd.encodeMsg(msg, nil)
	if len(wire) >= len(msg.Proposal.Block) {
		t.Fatalf("compact message is %d bytes, the block alone %d", len(wire), len(msg.Proposal.Block))
	}
	_, other := offlineNode(t)
	if _, err := other.openMsg(peer.ID(""), wire); !errors.Is(err, errMissingTxs) {
		t.Fatalf("openMsg without the transaction: %v", err)
	}
	if _, err := other.pool.Add(x, nil, zeroNonces{}); err != nil {
		t.Fatal(err)
	}
	got, err := other.openMsg(peer.ID(""), wire)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Proposal.Block, msg.Proposal.Block) {
		t.Fatal("the proposal's block was not rebuilt as sent")
	}
}

func mustID(t *testing.T, x *tx.Tx) hash.Hash {
	t.Helper()
	id, err := x.ID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// zeroNonces: every account is fresh.
type zeroNonces struct{}

func (zeroNonces) Nonce(crypto.Address) (uint64, error) { return 0, nil }

func encodeOrFail(t *testing.T, b *block.Block) []byte {
	t.Helper()
	raw, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestCompactFetchesMissing: a transaction only the proposer holds (it never
// went out on the transaction topic) is fetched by the other validators from
// the peer that sent them the compact block, and commits everywhere.
func TestCompactFetchesMissing(t *testing.T) {
	tn := newTestNet(t, 4)
	for i := range tn.nodes {
		tn.waitHeight(i, 1, 20*time.Second)
	}
	x := tn.transfer(0, seedKey(t, 60).Public().Address(), 3)
	id, _ := x.ID()
	// Straight into node 0's pool: no gossip, so only node 0 can propose it.
	if _, err := tn.nodes[0].pool.Add(x, nil, tn.nodes[0].nonces()); err != nil {
		t.Fatal(err)
	}
	for i := range tn.nodes {
		tn.waitTx(i, id, 20*time.Second)
	}
	var fetched uint64
	for _, nd := range tn.nodes {
		fetched += nd.fetched.Load()
	}
	if fetched < 1 {
		t.Fatalf("no validator fetched the transaction (%v fetched)", fetched)
	}
	// And a fetch of an unknown ID is answered with nothing, not an error.
	raw, err := tn.nodes[1].serveTxs(context.Background(), encoding.MustMarshal(&txsRequest{IDs: []hash.Hash{{1}, id}}))
	if err != nil {
		t.Fatal(err)
	}
	var resp txsResponse
	if err := encoding.Unmarshal(raw, &resp); err != nil || len(resp.Txs) != 2 || len(resp.Txs[0]) != 0 || len(resp.Txs[1]) == 0 {
		t.Fatalf("serveTxs = %d entries, %v", len(resp.Txs), err)
	}
}
