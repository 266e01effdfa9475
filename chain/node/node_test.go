package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/builtin"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/tx"
)

type testNet struct {
	t     *testing.T
	keys  []crypto.PrivateKey
	admin crypto.PrivateKey
	gen   *genesis.Doc
	homes []string
	nodes []*Node
	addrs [][]string
}

func seedKey(t *testing.T, b byte) crypto.PrivateKey {
	k, err := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(bytes.Repeat([]byte{b}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newTestNet starts n validators as real libp2p hosts on 127.0.0.1 with bbolt homes.
func newTestNet(t *testing.T, n int) *testNet {
	tn := &testNet{t: t, admin: seedKey(t, 200)}
	var pubs []crypto.PublicKey
	for i := 0; i < n; i++ {
		k := seedKey(t, byte(i+1))
		tn.keys = append(tn.keys, k)
		pubs = append(pubs, k.Public())
		tn.homes = append(tn.homes, filepath.Join(t.TempDir(), fmt.Sprintf("val-%d", i)))
	}
	tn.gen = genesis.Default("nodetest", pubs, tn.admin.Public().Address())
	tn.nodes = make([]*Node, n)
	tn.addrs = make([][]string, n)
	for i := 0; i < n; i++ {
		tn.start(i)
	}
	t.Cleanup(func() {
		for _, nd := range tn.nodes {
			if nd != nil {
				nd.Close()
			}
		}
	})
	return tn
}

func (tn *testNet) start(i int) {
	var peers []string
	for j, a := range tn.addrs {
		if j != i && len(a) > 0 {
			peers = append(peers, a[0])
		}
	}
	nd, err := New(Config{Name: fmt.Sprintf("val-%d", i), Home: tn.homes[i], Genesis: tn.gen, Key: tn.keys[i],
		Validator: true, P2PListen: "/ip4/127.0.0.1/tcp/0", Peers: peers,
		Registry: builtin.Registry(), Models: builtin.Models()})
	if err != nil {
		tn.t.Fatal(err)
	}
	if err := nd.Start(context.Background()); err != nil {
		tn.t.Fatal(err)
	}
	tn.nodes[i] = nd
	if tn.addrs[i] == nil {
		tn.addrs[i] = nd.Addrs()
	}
}

func (tn *testNet) waitHeight(i int, h uint64, d time.Duration) {
	tn.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if tn.nodes[i].height() >= h {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	tn.t.Fatalf("node %d stuck at height %d, want %d", i, tn.nodes[i].height(), h)
}

func (tn *testNet) transfer(nonce uint64, to crypto.Address, amount uint64) *tx.Tx {
	x, err := tx.New(builtin.Registry(), "nodetest", &asset.Transfer{Asset: "STAKE", From: tn.admin.Public().Address(), To: to, Amount: amount},
		tx.Signer{Key: tn.admin.Public(), Nonce: nonce})
	if err != nil {
		tn.t.Fatal(err)
	}
	if err := x.Sign(tn.admin); err != nil {
		tn.t.Fatal(err)
	}
	return x
}

func (tn *testNet) waitTx(i int, id hash.Hash, d time.Duration) {
	tn.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		r, err := tn.nodes[i].TxResult(context.Background(), id)
		if err == nil {
			if r.Code != exec.OK {
				tn.t.Fatalf("tx %s: %v %s", id.Short(), r.Code, r.Error)
			}
			return
		}
		if !errors.Is(err, ErrNotFound) {
			tn.t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tn.t.Fatalf("tx %s not committed on node %d", id.Short(), i)
}

func balance(t *testing.T, n *Node, a crypto.Address) uint64 {
	r, err := n.State(0, asset.BalanceKey("STAKE", a), true)
	if err != nil {
		t.Fatal(err)
	}
	if r.Found {
		if err := r.Proof.VerifyMembership(r.StateRoot, r.Key, r.Value); err != nil {
			t.Fatal(err)
		}
	}
	var v uint64
	if r.Found {
		if err := encoding.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

// TestFourValidatorsSurviveACrash runs four validators over real libp2p and bbolt,
// commits transfers, stops one validator, keeps committing with three, restarts it
// from its home and checks that it catches up to the same state root.
func TestFourValidatorsSurviveACrash(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node test")
	}
	tn := newTestNet(t, 4)
	for i := range tn.nodes {
		tn.waitHeight(i, 2, 30*time.Second)
	}
	bob := seedKey(t, 99).Public().Address()
	x := tn.transfer(0, bob, 10)
	id, err := tn.nodes[0].Submit(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	tn.waitTx(2, id, 20*time.Second)

	tn.nodes[3].Close()
	tn.nodes[3] = nil
	stopped := tn.nodes[0].height()
	for nonce := uint64(1); nonce <= 3; nonce++ {
		id, err := tn.nodes[1].Submit(context.Background(), tn.transfer(nonce, bob, 5))
		if err != nil {
			t.Fatal(err)
		}
		tn.waitTx(0, id, 20*time.Second)
		tn.waitTx(1, id, 20*time.Second) // the balance is read from node 1
	}
	if got := balance(t, tn.nodes[1], bob); got != 25 {
		t.Fatalf("bob has %d, want 25", got)
	}
	if tn.nodes[0].height() <= stopped {
		t.Fatal("no progress with three of four validators")
	}

	tn.start(3)
	target := tn.nodes[0].height() + 1
	tn.waitHeight(3, target, 30*time.Second)
	tn.waitHeight(0, target, 30*time.Second)
	h := min(tn.nodes[0].height(), tn.nodes[3].height())
	r0, err := tn.nodes[0].State(h, "supply/STAKE", false)
	if err != nil {
		t.Fatal(err)
	}
	r3, err := tn.nodes[3].State(h, "supply/STAKE", false)
	if err != nil {
		t.Fatal(err)
	}
	if r0.StateRoot != r3.StateRoot {
		t.Fatalf("height %d: state roots differ after catch-up", h)
	}
	if got := balance(t, tn.nodes[3], bob); got != 25 {
		t.Fatalf("restarted node sees bob with %d, want 25", got)
	}
}

// TestSubmitBatch: a batch is admitted per transaction, in order, with one
// batched signature check: good ones commit, a forged one, a wrong-chain one and
// a resubmission get their own answers and do not disturb the rest.
func TestSubmitBatch(t *testing.T) {
	tn := newTestNet(t, 1)
	tn.waitHeight(0, 1, 10*time.Second)
	bob := seedKey(t, 77).Public().Address()
	good0, good1 := tn.transfer(0, bob, 3), tn.transfer(1, bob, 4)
	forged := tn.transfer(2, bob, 5)
	forged.Proofs[0].Signature[0] ^= 1
	other, err := tx.New(builtin.Registry(), "elsewhere", &asset.Transfer{Asset: "STAKE", From: tn.admin.Public().Address(), To: bob, Amount: 1},
		tx.Signer{Key: tn.admin.Public(), Nonce: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Sign(tn.admin); err != nil {
		t.Fatal(err)
	}
	ids, errs := tn.nodes[0].SubmitBatch(context.Background(), []*tx.Tx{good0, forged, other, good1, good0})
	for i, want := range []error{nil, tx.ErrBadProof, tx.ErrWrongChain, nil, nil} {
		if want == nil && errs[i] != nil || want != nil && !errors.Is(errs[i], want) {
			t.Errorf("tx %d: got %v, want %v", i, errs[i], want)
		}
	}
	if ids[0] != ids[4] {
		t.Errorf("a resubmission got ID %s, the first %s", ids[4].Short(), ids[0].Short())
	}
	tn.waitTx(0, ids[0], 10*time.Second)
	tn.waitTx(0, ids[3], 10*time.Second)
	if got := balance(t, tn.nodes[0], bob); got != 7 {
		t.Errorf("bob holds %d STAKE, want 7", got)
	}
}
