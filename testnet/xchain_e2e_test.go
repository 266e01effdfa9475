package testnet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/plugchain/plug/testnet"
)

// trade is the part of `plug settle ... --output json` the test reads.
type trade struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Final  bool   `json:"final"`
	Reason string `json:"reason"`
	Legs   []struct {
		Chain  string `json:"chain"`
		Asset  string `json:"asset"`
		Status string `json:"status"`
		Reason string `json:"reason"`
	} `json:"legs"`
	Prepares []struct {
		Leg int `json:"leg"`
	} `json:"prepares"`
}

// settle runs a plug settle command with --output json and decodes its
// output; an aborted trade exits non-zero but still prints its status.
func settle(t *testing.T, args ...string) trade {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, plugBin, append(args, "--output", "json")...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	runErr := cmd.Run()
	var tr trade
	if err := json.Unmarshal(out.Bytes(), &tr); err != nil || tr.ID == "" {
		t.Fatalf("plug %s: %v (%v)\nstdout: %s\nstderr: %s", strings.Join(args, " "), runErr, err, out.String(), errb.String())
	}
	if (tr.Status == "aborted") != (runErr != nil) {
		t.Fatalf("plug %s: status %s but exit error %v\nstderr: %s", strings.Join(args, " "), tr.Status, runErr, errb.String())
	}
	return tr
}

func balance(t *testing.T, dir, chain, account, asset string) uint64 {
	t.Helper()
	var res struct {
		Balance uint64 `json:"balance"`
	}
	plug(t, &res, "query", "balance", "--testnet", dir, "--chain", chain, "--account", account, "--asset", asset, "--prove", "--output", "json")
	return res.Balance
}

// wantFinal checks that every leg of tr ended as status.
func wantFinal(t *testing.T, what string, tr trade, status string) {
	t.Helper()
	if !tr.Final || tr.Status != status || len(tr.Legs) != 2 {
		t.Fatalf("%s: want final %s with 2 legs, got %+v", what, status, tr)
	}
	for i, l := range tr.Legs {
		if l.Status != status {
			t.Fatalf("%s: leg %d on %s is %s, want %s: %+v", what, i, l.Chain, l.Status, status, tr)
		}
	}
}

// TestCrosschainEndToEnd runs two chains of four validator processes and one
// relay process (`plug testnet up --chains 2`), and settles through the CLI: a
// DvP that commits (with and without the seller's prepare on the coordinator), a DvP that aborts for insufficient funds with the seller's
// escrow refunded, a DvP whose coordinator chain loses a validator (SIGKILL)
// right after submission and still commits, and a DvP submitted while the relay
// is down that settles once the relay restarts from its bbolt file.
func TestCrosschainEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two 4-validator chains and a relay; skipped with -short")
	}
	start := time.Now()
	dir := testnetDir(t)
	var up testnet.Report
	plug(t, &up, "testnet", "up", "--dir", dir, "--chains", "2", "--validators", "4", "--detach", "--output", "json")
	if len(up.Chains) != 2 || len(up.Relays) != 1 || !up.Relays[0].Alive {
		t.Fatalf("up: want 2 chains and a running relay, got %+v", up)
	}
	t.Logf("up: %v", time.Since(start))
	dvp := func(seller, buyer, delivery, payment string, extra ...string) []string {
		return append([]string{"settle", "dvp", "--testnet", dir, "--seller", seller, "--buyer", buyer,
			"--delivery", delivery, "--payment", payment, "--coordinator", "alpha"}, extra...)
	}

	// 1. A DvP that commits: 100 EUR on alpha against 110 USD on beta.
	eurA, usdB := balance(t, dir, "alpha", "alice", "EUR"), balance(t, dir, "beta", "bob", "USD")
	t0 := time.Now()
	tr := settle(t, dvp("alice", "bob", "alpha:EUR:100", "beta:USD:110", "--wait")...)
	wantFinal(t, "dvp", tr, "committed")
	t.Logf("committed DvP %s in %v", tr.ID[:12], time.Since(t0))
	if got := balance(t, dir, "alpha", "alice", "EUR"); got != eurA-100 {
		t.Errorf("alice EUR on alpha = %d, want %d", got, eurA-100)
	}
	if got := balance(t, dir, "alpha", "bob", "EUR"); got != testnet.InitialBalance+100 {
		t.Errorf("bob EUR on alpha = %d, want %d", got, testnet.InitialBalance+100)
	}
	if got := balance(t, dir, "beta", "bob", "USD"); got != usdB-110 {
		t.Errorf("bob USD on beta = %d, want %d", got, usdB-110)
	}
	if got := balance(t, dir, "beta", "alice", "USD"); got != testnet.InitialBalance+110 {
		t.Errorf("alice USD on beta = %d, want %d", got, testnet.InitialBalance+110)
	}

	// 1b. The same with --no-coordinator-prepare: only bob prepares (on beta);
	// the relay's decide on alpha prepares and settles alice's leg.
	eurA = balance(t, dir, "alpha", "alice", "EUR")
	tr = settle(t, dvp("alice", "bob", "alpha:EUR:20", "beta:USD:22", "--wait", "--no-coordinator-prepare")...)
	wantFinal(t, "dvp without a coordinator prepare", tr, "committed")
	if len(tr.Prepares) != 1 || tr.Prepares[0].Leg != 1 {
		t.Errorf("prepares submitted: %+v, want bob's (leg 1) only", tr.Prepares)
	}
	if got := balance(t, dir, "alpha", "alice", "EUR"); got != eurA-20 {
		t.Errorf("alice EUR on alpha = %d, want %d", got, eurA-20)
	}

	// 2. Bob cannot pay: his leg is refused, alice's prepared leg is refunded.
	eurA = balance(t, dir, "alpha", "alice", "EUR")
	tr = settle(t, dvp("alice", "bob", "alpha:EUR:100", "beta:USD:5000000", "--wait")...)
	wantFinal(t, "unfunded dvp", tr, "aborted")
	if !strings.Contains(tr.Reason, "insufficient funds") {
		t.Errorf("abort reason %q does not say insufficient funds", tr.Reason)
	}
	if got := balance(t, dir, "alpha", "alice", "EUR"); got != eurA {
		t.Errorf("alice EUR on alpha after the abort = %d, want %d (refunded)", got, eurA)
	}

	// 3. The coordinator loses a validator mid-way: 3 of 4 still hold > 2/3.
	tr = settle(t, dvp("carol", "bob", "alpha:EUR:7", "beta:USD:8")...)
	plug(t, nil, "testnet", "kill", "--dir", dir, "alpha-val-2")
	tr = settle(t, "settle", "status", tr.ID, "--testnet", dir, "--wait", "--timeout", "60s")
	wantFinal(t, "dvp with a validator down", tr, "committed")
	t.Logf("committed with alpha-val-2 down: %v", time.Since(start))
	plug(t, nil, "testnet", "restart", "--dir", dir, "alpha-val-2", "--wait")

	// 4. The relay is down while a trade is submitted; restarted, it resumes
	// from its db and reconciles from chain state.
	plug(t, nil, "testnet", "kill", "--dir", dir, "relay-1")
	tr = settle(t, dvp("alice", "carol", "alpha:EUR:3", "beta:USD:4")...)
	time.Sleep(time.Second)
	if st := settle(t, "settle", "status", tr.ID, "--testnet", dir); st.Final {
		t.Fatalf("trade final with no relay running: %+v", st)
	}
	plug(t, nil, "testnet", "restart", "--dir", dir, "relay-1")
	tr = settle(t, "settle", "status", tr.ID, "--testnet", dir, "--wait", "--timeout", "60s")
	wantFinal(t, "dvp after relay restart", tr, "committed")

	// The relay's own books follow the chains by a pass.
	eventually(t, "the relay with nothing pending", func() (bool, string) {
		var st testnet.Report
		plug(t, &st, "testnet", "status", "--dir", dir, "--output", "json")
		ok := len(st.Relays) == 1 && st.Relays[0].Alive && st.Relays[0].Pending == 0 && st.Relays[0].Error == ""
		return ok, fmt.Sprintf("%+v", st.Relays)
	})
	t.Logf("done: %v", time.Since(start))
}
