package relay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"path/filepath"
	"testing"
	"time"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/node"
	"github.com/plugchain/plug/chain/node/nodetest"
	"github.com/plugchain/plug/chain/tx"
)

// TestStallResendsInFlight: when the relayer's committed nonce stalls behind
// its local one (here a transaction was lost, leaving a gap), the relay resends
// the transactions it signed, unchanged, instead of re-reading the nonce and
// signing new ones over nonces still pending; the gap heals and the nonce epoch
// (which would make every in-flight step due again) stays.
func TestStallResendsInFlight(t *testing.T) {
	k := func(name string) crypto.PrivateKey {
		seed := sha256.Sum256([]byte("resend-test/" + name))
		key, err := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(seed[:]))
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	val, admin, relayer, bob := k("val"), k("admin"), k("relayer"), k("bob")
	gen := genesis.Default("solo", []crypto.PublicKey{val.Public()}, admin.Public().Address())
	gen.Assets = append(gen.Assets, genesis.Asset{Name: "USD", Issuer: "admin",
		Balances: map[string]uint64{relayer.Public().Address().String(): 100}})
	nd, url := nodetest.Start(t, node.Config{Name: "solo", Genesis: gen, Key: val, Validator: true,
		Registry: app.Registry(), Models: app.Models()})
	nodetest.WaitHeight(t, nd, 1)

	r, err := New(&Config{Name: "t", DB: filepath.Join(t.TempDir(), "relay.db"), Signer: relayer,
		// A relay needs two chains; the second is never used here.
		Chains: []ChainConfig{{ID: "solo", Endpoints: []string{url}}, {ID: "other", Endpoints: []string{url}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	cs := r.chains["solo"]
	if err := r.poll(ctx, cs); err != nil {
		t.Fatal(err)
	}
	signed := make([]*tx.Tx, 2)
	for i := range signed {
		x, err := tx.New(r.reg, "solo", &asset.Transfer{Asset: "USD", From: r.addr, To: bob.Public().Address(), Amount: 1},
			tx.Signer{Key: relayer.Public(), Nonce: uint64(i)})
		if err == nil {
			err = x.Sign(relayer)
		}
		if err != nil {
			t.Fatal(err)
		}
		signed[i] = x
	}
	// Nonce 0 is "lost": only nonce 1 reaches the node, and it cannot execute.
	if res, err := cs.c.SubmitBatch(ctx, signed[1:]); err != nil || res[0] != nil {
		t.Fatalf("submit nonce 1: %v %v", res, err)
	}
	cs.mu.Lock()
	cs.nonce, cs.sent = 2, map[uint64]*tx.Tx{0: signed[0], 1: signed[1]}
	cs.mu.Unlock()
	nodetest.WaitHeight(t, nd, cs.height+stuckBlocks+1)
	cs.mu.Lock()
	cs.stuckSince = time.Now().Add(-time.Hour)
	cs.mu.Unlock()
	epoch := cs.epoch.Load()
	if err := r.poll(ctx, cs); err != nil {
		t.Fatal(err)
	}
	if cs.epoch.Load() != epoch || cs.nonce != 2 {
		t.Fatalf("the stall resynced the nonce (epoch %d -> %d, local nonce %d)", epoch, cs.epoch.Load(), cs.nonce)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		ns, err := cs.c.Nonces(ctx, r.addr)
		if err != nil {
			t.Fatal(err)
		}
		if n := ns.Committed; n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed nonce %d after the resend, want 2", ns.Committed)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := r.poll(ctx, cs); err != nil || len(cs.sent) != 0 {
		t.Fatalf("committed transactions still kept: %d (%v)", len(cs.sent), err)
	}
	// With a transaction it no longer holds, the relay falls back to a resync.
	cs.mu.Lock()
	cs.nonce, cs.sent = 3, map[uint64]*tx.Tx{}
	ok := r.resend(ctx, cs, 2)
	cs.mu.Unlock()
	if ok {
		t.Fatal("resend without the transaction claimed success")
	}
}
