package testnet_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/plugchain/plug/testnet"
)

// TestBackToBackTransfers is what a user does at a terminal: 20 `plug tx
// transfer` without --wait in a row from one signer, a validator SIGKILLed —
// the one every command talked to — then 5 more with --wait. Every one of the
// 25 must arrive exactly once: each command takes the nonce after the signer's
// pending transactions, and a transaction the killed node held but had not
// passed on is sent again, with the same bytes, by the next command.
func TestBackToBackTransfers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 4-node testnet; skipped with -short")
	}
	start := time.Now()
	dir := testnetDir(t)
	var up testnet.Report
	plug(t, &up, "testnet", "up", "--dir", dir, "--chains", "1", "--validators", "4", "--detach", "--output", "json")
	balance := func() uint64 {
		var bal struct {
			Balance uint64 `json:"balance"`
		}
		plug(t, &bal, "query", "balance", "--testnet", dir, "--account", "bob", "--asset", "USD", "--output", "json")
		return bal.Balance
	}
	before := balance()

	type out struct {
		ID     string `json:"id"`
		Nonce  uint64 `json:"nonce"`
		Status string `json:"status"`
		Node   string `json:"node"`
	}
	nonces := map[uint64]string{}
	for i := range 20 {
		var o out
		plug(t, &o, "tx", "transfer", "--testnet", dir, "--from", "alice", "--to", "bob", "--asset", "USD",
			"--amount", "5", "--output", "json")
		if o.Status != "pending" && o.Status != "ok" {
			t.Fatalf("transfer %d: %+v", i, o)
		}
		if prev, dup := nonces[o.Nonce]; dup {
			t.Fatalf("transfer %d got nonce %d, already given to %s", i, o.Nonce, prev)
		}
		nonces[o.Nonce] = o.ID
	}
	// Kill the node the commands talked to (the testnet's first): whatever it
	// held and had not gossiped is gone with it.
	victim := up.Chains[0].Nodes[0].Name
	plug(t, nil, "testnet", "kill", "--dir", dir, victim)
	t.Logf("20 transfers submitted, %s killed: %v", victim, time.Since(start))
	for i := range 5 {
		var o out
		plug(t, &o, "tx", "transfer", "--testnet", dir, "--from", "alice", "--to", "bob", "--asset", "USD",
			"--amount", "5", "--wait", "--timeout", "45s", "--output", "json")
		if o.Status != "ok" {
			t.Fatalf("transfer %d with --wait: %+v", 20+i, o)
		}
		if prev, dup := nonces[o.Nonce]; dup {
			t.Fatalf("transfer %d got nonce %d, already given to %s", 20+i, o.Nonce, prev)
		}
		nonces[o.Nonce] = o.ID
	}
	// The 20 without --wait commit too (the last --wait ones come after them
	// by nonce); the outbox holds nothing pending once they are in.
	want := before + 25*5
	eventually(t, "all 25 transfers committed", func() (bool, string) {
		var pend []struct {
			Status string `json:"status"`
		}
		plug(t, &pend, "tx", "pending", "--testnet", dir, "--output", "json")
		got := balance()
		return got == want, fmt.Sprintf("bob has %d, want %d; outbox: %d entries", got, want, len(pend))
	})
	for n := range uint64(25) {
		id, ok := nonces[n]
		if !ok {
			t.Fatalf("no transfer took nonce %d: %v", n, nonces)
		}
		var q struct {
			Status string `json:"status"`
		}
		plug(t, &q, "query", "tx", id, "--testnet", dir, "--output", "json")
		if q.Status != "ok" {
			t.Fatalf("transfer with nonce %d (%s): %s", n, id, q.Status)
		}
	}
	b, _ := json.Marshal(nonces)
	t.Logf("25 transfers, nonces 0..24 each committed once (%d bytes of ids): %v", len(b), time.Since(start))
}
