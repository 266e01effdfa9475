package testnet_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
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

// TestReadsAndPreflight: reads are checked against the chain asked for, an
// unknown asset is an error before anything is signed or read as zero, and a
// transfer to the zero address is refused by the chain.
func TestReadsAndPreflight(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a testnet; skipped with -short")
	}
	dir := testnetDir(t)
	var up testnet.Report
	plug(t, &up, "testnet", "up", "--dir", dir, "--chains", "1", "--validators", "1", "--detach", "--output", "json")
	url := up.Chains[0].Nodes[0].HTTP
	keys := []string{"--keyring-dir", filepath.Join(dir, testnet.KeyringDir), "--keyring-backend", "test"}
	mustFail := func(want string, args ...string) {
		t.Helper()
		err := plugErr(t, nil, args...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("plug %s: %v, want an error saying %q", strings.Join(args, " "), err, want)
		}
	}
	for _, q := range [][]string{
		{"query", "balance", "--account", "bob", "--asset", "USD"},
		{"query", "state", "supply/USD"},
		{"query", "status"},
	} {
		mustFail(`serves chain "alpha", not "beta"`, append(append(q, "--node", url, "--chain", "beta"), keys...)...)
		plug(t, nil, append(append(q, "--node", url, "--chain", "alpha", "--output", "json"), keys...)...)
	}
	mustFail(`unknown asset "XYZ" on chain alpha`, "query", "balance", "--testnet", dir, "--account", "bob", "--asset", "XYZ")
	mustFail(`unknown asset "XYZ" on chain alpha`, "tx", "transfer", "--testnet", dir, "--from", "alice", "--to", "bob",
		"--asset", "XYZ", "--amount", "1", "--wait")
	var n struct {
		Decoded any `json:"decoded"`
	}
	plug(t, &n, "query", "state", "--testnet", dir, "nonce/"+aliceAddr(t, dir), "--output", "json")
	if n.Decoded != nil {
		t.Fatalf("a transfer of an unknown asset consumed alice's nonce: %v", n.Decoded)
	}
	var res struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	err := plugErr(t, &res, "tx", "transfer", "--testnet", dir, "--from", "alice", "--to", strings.Repeat("0", 40),
		"--asset", "USD", "--amount", "1", "--wait", "--output", "json")
	if err == nil || res.Status != "failed" || !strings.Contains(res.Error, "recipient is the zero address") {
		t.Fatalf("transfer to the zero address: %+v %v", res, err)
	}
}

// aliceAddr reads alice's address from the testnet's keyring.
func aliceAddr(t *testing.T, dir string) string {
	t.Helper()
	var k struct {
		Address string `json:"address"`
	}
	plug(t, &k, "keys", "show", "alice", "--keyring-dir", filepath.Join(dir, testnet.KeyringDir), "--keyring-backend", "test", "--output", "json")
	return k.Address
}
