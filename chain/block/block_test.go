package block_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/builtin"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/chain/validator"
	"github.com/plugchain/plug/chain/valset"
)

const chainID = "blk"

type node struct {
	st *state.Store
	ex *exec.Executor
}

func key(t *testing.T, b byte) crypto.PrivateKey {
	k, err := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(bytes.Repeat([]byte{b}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newNode opens a real bbolt state and writes the same genesis state on every node.
func newNode(t *testing.T, name string, val, user crypto.PrivateKey) *node {
	st, err := state.Open(filepath.Join(t.TempDir(), name+".db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	va, ua := val.Public().Address(), user.Public().Address()
	var cs []state.Change
	put := func(k string, v any) { cs = append(cs, state.Change{Key: k, Value: encoding.MustMarshal(v)}) }
	put(rbac.RolesKey, []string{"public"})
	put(rbac.RoleKey("public"), rbac.Role{Public: true, Transforms: []string{asset.TypeTransfer, validator.TypeStake, validator.TypeUnstake}})
	put(asset.DefKey("STAKE"), asset.Definition{Issuer: "public"})
	put(asset.BalanceKey("STAKE", ua), uint64(500))
	put(asset.SupplyKey("STAKE"), uint64(600))
	put(validator.BondKey(va), uint64(100))
	put(validator.StakingAssetKey, "STAKE")
	put(validator.SetKey, valset.Set{{Address: va, PubKey: val.Public(), Power: 100}})
	b, err := st.Stage(cs)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(b); err != nil {
		t.Fatal(err)
	}
	return &node{st: st, ex: builtin.Executor()}
}

func signTx(t *testing.T, k crypto.PrivateKey, nonce uint64, tr transform.Transform) *tx.Tx {
	x, err := tx.New(builtin.Registry(), chainID, tr, tx.Signer{Key: k.Public(), Nonce: nonce})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Sign(k); err != nil {
		t.Fatal(err)
	}
	return x
}

// TestBuildCheckCommitAcrossNodes builds blocks on one node, checks and commits them
// on another, and follows a validator-set change into the next header.
func TestBuildCheckCommitAcrossNodes(t *testing.T) {
	val, user, other := key(t, 1), key(t, 2), key(t, 3)
	a, b := newNode(t, "a", val, user), newNode(t, "b", val, user)
	if a.st.Root() != b.st.Root() {
		t.Fatal("genesis roots differ")
	}
	ua := user.Public().Address()
	blocks := [][]*tx.Tx{
		{signTx(t, user, 0, &asset.Transfer{Asset: "STAKE", From: ua, To: other.Public().Address(), Amount: 50})},
		{signTx(t, user, 1, &validator.Stake{Asset: "STAKE", Amount: 200})},
		{signTx(t, user, 2, &validator.Unstake{Asset: "STAKE", Amount: 500})}, // more than bonded: fails
	}
	var prevA, prevB *block.Header
	for h, txs := range blocks {
		blk, out, err := block.Build(a.ex, a.st, prevA, chainID, int64(1000+h), txs, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if blk.Header.Height != uint64(h+1) {
			t.Fatalf("height %d, want %d", blk.Header.Height, h+1)
		}
		raw, err := blk.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := block.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		outB, err := block.Check(b.ex, b.st, prevB, got, nil)
		if err != nil {
			t.Fatalf("block %d: %v", h+1, err)
		}
		if err := a.st.Commit(out.Batch); err != nil {
			t.Fatal(err)
		}
		if err := b.st.Commit(outB.Batch); err != nil {
			t.Fatal(err)
		}
		if a.st.Root() != blk.Header.StateRoot || b.st.Root() != blk.Header.StateRoot {
			t.Fatalf("block %d: committed roots differ from the header", h+1)
		}
		switch h {
		case 1:
			if blk.Header.NextValidatorsHash == blk.Header.ValidatorsHash {
				t.Fatal("stake did not change the next validator set")
			}
			if len(out.NextValidators) != 2 || out.Receipts[0].Code != exec.OK {
				t.Fatalf("after stake: %v %+v", out.Receipts[0].Error, out.NextValidators)
			}
		case 2:
			if prevA.NextValidatorsHash != blk.Header.ValidatorsHash {
				t.Fatal("header does not chain the validator set")
			}
			if out.Receipts[0].Code != exec.Failed || !errors.Is(out.Receipts[0].Err, transform.ErrInsufficientFunds) {
				t.Fatalf("over-unstake: %v %s", out.Receipts[0].Code, out.Receipts[0].Error)
			}
		}
		hdr := blk.Header
		prevA, prevB = &hdr, &hdr
	}
}

func TestCheckRejectsForgedHeadersAndRejectedTxs(t *testing.T) {
	val, user := key(t, 1), key(t, 2)
	a, b := newNode(t, "a", val, user), newNode(t, "b", val, user)
	ua := user.Public().Address()
	good := signTx(t, user, 0, &asset.Transfer{Asset: "STAKE", From: ua, To: val.Public().Address(), Amount: 1})
	blk, _, err := block.Build(a.ex, a.st, nil, chainID, 5, []*tx.Tx{good}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	root := b.st.Root()
	for name, mutate := range map[string]func(*block.Block){
		"state root":  func(x *block.Block) { x.Header.StateRoot[0] ^= 1 },
		"tx root":     func(x *block.Block) { x.Header.TxRoot[0] ^= 1 },
		"receipts":    func(x *block.Block) { x.Header.ReceiptsRoot[0] ^= 1 },
		"height":      func(x *block.Block) { x.Header.Height = 7 },
		"validators":  func(x *block.Block) { x.Header.NextValidatorsHash[0] ^= 1 },
		"dropped tx":  func(x *block.Block) { x.Txs = nil },
		"replayed tx": func(x *block.Block) { x.Txs = append(x.Txs, x.Txs[0]) },
		"wrong chain": func(x *block.Block) { x.Header.ChainID = "other" },
	} {
		forged := *blk
		forged.Txs = append([]*tx.Tx(nil), blk.Txs...)
		mutate(&forged)
		if _, err := block.Check(b.ex, b.st, nil, &forged, nil); !errors.Is(err, block.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
		if b.st.Root() != root || b.st.Version() != 1 {
			t.Fatalf("%s: a rejected block changed the state", name)
		}
	}
	// A proposer drops rejected transactions instead of including them.
	bad := signTx(t, user, 9, &asset.Transfer{Asset: "STAKE", From: ua, To: val.Public().Address(), Amount: 1})
	blk2, _, err := block.Build(a.ex, a.st, nil, chainID, 5, []*tx.Tx{good, bad}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(blk2.Txs) != 1 {
		t.Fatalf("block kept %d transactions, want 1", len(blk2.Txs))
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encoding.MustMarshal(&block.Block{Header: block.Header{ChainID: "c", Height: 1}}))
	f.Add([]byte{0xa2, 0x01, 0xa0, 0x02, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := block.Decode(data)
		if err != nil {
			return
		}
		again, err := b.Encode()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("accepted bytes do not re-encode: %v", err)
		}
		_ = b.Header.Hash()
	})
}

// TestBlockInsideAMessage: a block decoded as a field of another message (a
// gateway's block response) is decoded as Decode does: the same transactions
// with their encodings, and a malformed transaction in it is refused.
func TestBlockInsideAMessage(t *testing.T) {
	k := key(t, 7)
	b := &block.Block{Header: block.Header{ChainID: chainID, Height: 1}, Txs: []*tx.Tx{
		signTx(t, k, 0, &asset.Transfer{Asset: "USD", From: k.Public().Address(), To: k.Public().Address(), Amount: 1}),
		signTx(t, k, 1, &asset.Transfer{Asset: "USD", From: k.Public().Address(), To: k.Public().Address(), Amount: 2}),
	}}
	type message struct {
		Block *block.Block `cbor:"1,keyasint"`
	}
	data := encoding.MustMarshal(&message{Block: b})
	var m message
	if err := encoding.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for i, x := range b.Txs {
		want, _ := x.Encode()
		got, _ := m.Block.Txs[i].Encode()
		wid, _ := x.ID()
		gid, _ := m.Block.Txs[i].ID()
		if !bytes.Equal(got, want) || gid != wid {
			t.Fatalf("transaction %d differs after the round trip", i)
		}
		if d, _ := tx.Decoded(m.Block.Txs[i]); d != m.Block.Txs[i] {
			t.Fatalf("transaction %d lost its encoding: a field decode did not go through block.Decode", i)
		}
	}
	b.Txs[1].Proofs = nil // a transaction of the wrong shape
	if err := encoding.Unmarshal(encoding.MustMarshal(&message{Block: b}), &m); !errors.Is(err, encoding.ErrMalformed) && !errors.Is(err, tx.ErrMalformed) {
		t.Fatalf("a block holding a malformed transaction: %v, want it refused", err)
	}
}
