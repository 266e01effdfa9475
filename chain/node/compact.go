package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/p2p"
	"github.com/plugchain/plug/chain/tx"
)

// Blocks travel between validators in compact form: the header and the IDs of
// the transactions, which every validator already holds from the transaction
// topic. A proposal of 600 crosschain transactions is 20 KB on the wire instead
// of 400 KB, and it is sent again in every rebroadcast, every gossip duplicate
// and the decided-block message: before, blocks were four fifths of the gossip
// bytes and each receiver decoded every transaction of them a second time. The
// receiver rebuilds the block from its mempool, fetching the few transactions it
// lacks from the peer that forwarded the message (which validated it and so holds
// them), before the consensus machine sees it. The machine, the write-ahead state
// and the block store keep full blocks: the compaction is the transport's alone.

// compactBlock is a block without its transactions' bytes.
type compactBlock struct {
	Header block.Header `cbor:"1,keyasint"`
	// TxIDs is nil for a block whose transaction list encodes as null, so the
	// rebuilt block encodes exactly as the proposer's.
	TxIDs []hash.Hash `cbor:"2,keyasint"`
	// LastCert is the block's parent certificate (chain/liveness), whole.
	LastCert *consensus.Certificate `cbor:"3,keyasint,omitempty"`
}

// compact returns b's compact form.
func compact(b *block.Block) (*compactBlock, error) {
	c := &compactBlock{Header: b.Header, LastCert: b.LastCert}
	if b.Txs != nil {
		c.TxIDs = make([]hash.Hash, len(b.Txs))
	}
	for i, t := range b.Txs {
		id, err := t.ID()
		if err != nil {
			return nil, fmt.Errorf("transaction %d: %w", i, err)
		}
		c.TxIDs[i] = id
	}
	return c, nil
}

// errMissingTxs: a compact block names transactions neither this node nor the
// peer that sent it holds. The message is ignored, not held against the peer.
var errMissingTxs = errors.New("compact block: transactions not found")

// txFetchTimeout bounds the fetch of a compact block's missing transactions.
const txFetchTimeout = 2 * time.Second

// hydrate rebuilds the full block of c and its canonical encoding, taking the
// transactions from the mempool, then from the current height's candidates,
// then from peer from.
func (n *Node) hydrate(from peer.ID, c *compactBlock) ([]byte, error) {
	if len(c.TxIDs) > block.MaxTxs {
		return nil, fmt.Errorf("%w: %d transactions, limit %d", block.ErrTooLarge, len(c.TxIDs), block.MaxTxs)
	}
	b := &block.Block{Header: c.Header, LastCert: c.LastCert}
	var missing []int
	if c.TxIDs != nil {
		b.Txs = make([]*tx.Tx, len(c.TxIDs))
	}
	for i, id := range c.TxIDs {
		if b.Txs[i] = n.localTx(id); b.Txs[i] == nil {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		if err := n.fetchTxs(from, c.TxIDs, missing, b.Txs); err != nil {
			return nil, err
		}
	}
	// Each transaction encodes as its own bytes (tx.Tx.MarshalCBOR): this is a copy.
	raw, err := b.Encode()
	if err != nil {
		return nil, err
	}
	n.hydrated.put(raw, b)
	return raw, nil
}

// localTx finds a pending or proposed transaction by ID.
func (n *Node) localTx(id hash.Hash) *tx.Tx {
	if t := n.pool.Get(id); t != nil {
		return t
	}
	return n.app.candidateTx(id)
}

// txsRequest asks a peer for transactions by ID; the response holds each one's
// encoding, or nothing where the peer does not hold it.
type txsRequest struct {
	IDs []hash.Hash `cbor:"1,keyasint"`
}

type txsResponse struct {
	Txs [][]byte `cbor:"1,keyasint"`
}

// fetchTxs fills txs[i] for every i in missing from peer p.
func (n *Node) fetchTxs(p peer.ID, ids []hash.Hash, missing []int, txs []*tx.Tx) error {
	if n.host == nil || p == "" {
		return fmt.Errorf("%w: %d of %d", errMissingTxs, len(missing), len(ids))
	}
	req := txsRequest{IDs: make([]hash.Hash, len(missing))}
	for j, i := range missing {
		req.IDs[j] = ids[i]
	}
	ctx, cancel := context.WithTimeout(context.Background(), txFetchTimeout)
	defer cancel()
	raw, err := n.host.Request(ctx, p, "txs", encoding.MustMarshal(&req))
	if err != nil {
		return fmt.Errorf("%w: %d of %d: %w", errMissingTxs, len(missing), len(ids), err)
	}
	var resp txsResponse
	if err := encoding.Unmarshal(raw, &resp); err != nil || len(resp.Txs) != len(missing) {
		return fmt.Errorf("%w: malformed answer from %s", errMissingTxs, p)
	}
	for j, i := range missing {
		if len(resp.Txs[j]) == 0 {
			return fmt.Errorf("%w: %s holds no transaction %s", errMissingTxs, p, ids[i].Short())
		}
		t, err := tx.Decode(resp.Txs[j])
		if err != nil {
			return fmt.Errorf("fetched transaction %d: %w", i, err)
		}
		if id, _ := t.ID(); id != ids[i] {
			return fmt.Errorf("%w: %s answered transaction %s for %s", errMissingTxs, p, id.Short(), ids[i].Short())
		}
		txs[i] = t
	}
	n.fetched.Add(uint64(len(missing)))
	n.cfg.Metrics.TxsFetched(len(missing))
	return nil
}

// serveTxs answers transaction fetches from the mempool, the current height's
// candidate blocks and, for a peer a block behind, the block store.
func (n *Node) serveTxs(_ context.Context, req []byte) ([]byte, error) {
	var r txsRequest
	if err := encoding.Unmarshal(req, &r); err != nil {
		return nil, err
	}
	if len(r.IDs) > block.MaxTxs {
		return nil, fmt.Errorf("%d transactions asked, limit %d", len(r.IDs), block.MaxTxs)
	}
	resp := txsResponse{Txs: make([][]byte, len(r.IDs))}
	stored := map[uint64]*block.Block{}
	for i, id := range r.IDs {
		t := n.localTx(id)
		if t == nil {
			// A block rebuilt here but not yet validated (this node forwarded
			// the compact block as soon as it had rebuilt it).
			t = n.hydrated.tx(id)
		}
		if t == nil && n.store != nil {
			if h, idx, err := n.store.TxLocation(id); err == nil {
				b := stored[h]
				if b == nil {
					if b, err = n.store.Block(h); err != nil {
						continue
					}
					stored[h] = b
				}
				if idx < len(b.Txs) {
					t = b.Txs[idx]
				}
			}
		}
		if t == nil {
			continue
		}
		raw, err := t.Encode()
		if err != nil {
			continue
		}
		resp.Txs[i] = raw
	}
	return encoding.Marshal(&resp)
}

// hydratedCache keeps the last blocks rebuilt from compact form with their
// encodings, so that the consensus machine's Validate of those very bytes takes
// the block instead of decoding every transaction again.
type hydratedCache struct {
	mu      sync.Mutex
	entries [maxHydrated]hydratedEntry
	next    int
}

type hydratedEntry struct {
	raw []byte
	b   *block.Block
}

const maxHydrated = 16

func (c *hydratedCache) put(raw []byte, b *block.Block) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[c.next] = hydratedEntry{raw: raw, b: b}
	c.next = (c.next + 1) % maxHydrated
}

// tx finds a transaction of a rebuilt block by ID, for fetches that missed
// everywhere else.
func (c *hydratedCache) tx(id hash.Hash) *tx.Tx {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		if t := txIn(e.b, id); t != nil {
			return t
		}
	}
	return nil
}

// txIn returns the transaction of b (which may be nil) with ID id, or nil.
func txIn(b *block.Block, id hash.Hash) *tx.Tx {
	if b == nil {
		return nil
	}
	for _, t := range b.Txs {
		if tid, err := t.ID(); err == nil && tid == id {
			return t
		}
	}
	return nil
}

// get returns the block rebuilt as raw, or nil.
func (c *hydratedCache) get(raw []byte) *block.Block {
	if len(raw) == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		// The machine hands back the very slice hydrate made; equal bytes from
		// elsewhere (a full-form copy of the same block) are the same block too.
		if len(e.raw) == len(raw) && (&e.raw[0] == &raw[0] || bytes.Equal(e.raw, raw)) {
			return e.b
		}
	}
	return nil
}

// decodeBlock decodes a block the machine hands over, reusing a rebuilt one.
func (n *Node) decodeBlock(raw []byte) (*block.Block, error) {
	if b := n.hydrated.get(raw); b != nil {
		return b, nil
	}
	return block.Decode(raw)
}

// openMsg decodes a gossiped consensus message and, when its block came in
// compact form and the machine may need it (a height this node has not
// committed), rebuilds the block. A block for a committed height is left out:
// the machine only looks at such a message's height.
func (n *Node) openMsg(from peer.ID, data []byte) (*consensus.Message, error) {
	msg, c, err := decodeMsg(data)
	if err != nil || c == nil {
		return msg, err
	}
	var height uint64
	var dst *[]byte
	switch {
	case msg.Proposal != nil:
		height, dst = msg.Proposal.Height, &msg.Proposal.Block
	case msg.Decided != nil:
		height, dst = msg.Decided.Cert.Height, &msg.Decided.Block
	default:
		return nil, fmt.Errorf("%w: a compact block on a vote", consensus.ErrBadMessage)
	}
	if height <= n.height() {
		return msg, nil
	}
	if *dst, err = n.rebuild(from, c); err != nil {
		return nil, err
	}
	return msg, nil
}

// rebuild is hydrate for a topic validator: a block that cannot be rebuilt for
// want of transactions is ignored, not held against the peer that sent it.
func (n *Node) rebuild(from peer.ID, c *compactBlock) ([]byte, error) {
	raw, err := n.hydrate(from, c)
	if errors.Is(err, errMissingTxs) {
		return nil, fmt.Errorf("%w: %w", err, p2p.ErrIgnore)
	}
	return raw, err
}
