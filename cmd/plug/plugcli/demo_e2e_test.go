package plugcli

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// TestDemoE2E runs `plug demo --output json` for real (eight validator
// processes and a relay) and checks the story it tells: the DvP and the PvP
// committed on every leg, the unfunded trade aborted on every leg with its
// reason, the seller's escrow refunded, every asset conserved on every chain,
// and the testnet stopped and removed.
func TestDemoE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two 4-validator chains and a relay; skipped with -short")
	}
	start := time.Now()
	dir := t.TempDir() + "/demo"
	var story demoStory
	r := plug(t, nil, "demo", "--dir", dir, "--output", "json")
	if err := json.Unmarshal([]byte(r.stdout), &story); err != nil {
		t.Fatalf("plug demo --output json: exit %d, stdout is not one JSON document: %v\n%s\nstderr: %s", r.code, err, r.stdout, r.stderr)
	}
	t.Logf("plug demo: %v (the demo says %d ms)", time.Since(start), story.DurationMS)
	if r.code != 0 || !story.OK || story.Error != "" {
		t.Fatalf("plug demo: exit %d, ok %v, error %q\nstderr: %s", r.code, story.OK, story.Error, r.stderr)
	}
	if r.stderr != "" {
		t.Errorf("plug demo --output json wrote to stderr (the nodes must log to their files):\n%s", r.stderr)
	}
	if len(story.Chains) != 2 || len(story.Relays) != 1 || story.LightClients != 2 {
		t.Errorf("want 2 chains, 1 relay and 2 light clients, got %+v, %v, %d", story.Chains, story.Relays, story.LightClients)
	}
	for _, ch := range story.Chains {
		if ch.Validators != 4 {
			t.Errorf("chain %s has %d validators, want 4", ch.ID, ch.Validators)
		}
	}

	want := map[string]string{"dvp": "committed", "pvp": "committed", "failing": "aborted"}
	if len(story.Trades) != len(want) {
		t.Fatalf("want %d trades, got %d: %+v", len(want), len(story.Trades), story.Trades)
	}
	legChains := map[string][]string{}
	for _, tr := range story.Trades {
		status, ok := want[tr.Name]
		if !ok {
			t.Errorf("unexpected trade %q", tr.Name)
			continue
		}
		if !tr.OK || !tr.Final || string(tr.Status) != status || len(tr.ID) != 64 || tr.DurationMS <= 0 {
			t.Errorf("%s: want final %s, got %+v", tr.Name, status, tr)
		}
		if len(tr.Legs) != 2 {
			t.Fatalf("%s: want 2 legs, got %+v", tr.Name, tr.Legs)
		}
		for _, l := range tr.Legs {
			legChains[tr.Name] = append(legChains[tr.Name], l.Chain+":"+l.Asset)
			if l.Status != status || l.Height == 0 {
				t.Errorf("%s: leg %d on %s is %s at height %d, want %s", tr.Name, l.Leg, l.Chain, l.Status, l.Height, status)
			}
		}
		if status == "aborted" && !strings.Contains(tr.Reason, "insufficient funds") {
			t.Errorf("%s: reason %q does not say insufficient funds", tr.Name, tr.Reason)
		}
	}
	if got := strings.Join(legChains["dvp"], " "); got != "alpha:EUR beta:USD" {
		t.Errorf("dvp legs %s, want delivery alpha:EUR and payment beta:USD", got)
	}
	if got := strings.Join(legChains["pvp"], " "); got != "alpha:USD beta:EUR" {
		t.Errorf("pvp legs %s, want a currency leg on each chain", got)
	}

	// The refund: alice's EUR was escrowed while the trade was pending and
	// came back when it aborted.
	rf := story.Refund
	if rf == nil || !rf.Refunded || rf.After != rf.Before || rf.Amount != 100 {
		t.Errorf("refund: %+v", rf)
	} else if rf.LockSeen && rf.Locked != rf.Before-rf.Amount {
		t.Errorf("refund: balance while locked %d, want %d", rf.Locked, rf.Before-rf.Amount)
	}

	// Balances: every proven, the changes exactly those of the two committed
	// trades, and per chain and asset the accounts sum to the supply.
	for _, b := range append(story.BalancesBefore, story.BalancesAfter...) {
		if !b.Verified {
			t.Errorf("balance not verified: %+v", b)
		}
	}
	deltas := map[string]int64{}
	for _, c := range story.Changes {
		deltas[c.Chain+" "+c.Account+" "+c.Asset] = c.Delta
		if int64(c.After)-int64(c.Before) != c.Delta {
			t.Errorf("change %+v does not add up", c)
		}
	}
	wantDeltas := map[string]int64{
		"alpha alice EUR": -100, "alpha bob EUR": +100, "beta bob USD": -110, "beta alice USD": +110, // DvP
		"alpha alice USD": -50, "alpha bob USD": +50, "beta bob EUR": -45, "beta alice EUR": +45, // PvP
	}
	if len(deltas) != len(wantDeltas) {
		t.Errorf("balance changes %v, want %v", deltas, wantDeltas)
	}
	for k, v := range wantDeltas {
		if deltas[k] != v {
			t.Errorf("%s changed by %d, want %d", k, deltas[k], v)
		}
	}
	if !story.Conserved || len(story.Conservation) != 4 {
		t.Errorf("conservation: %v %+v", story.Conserved, story.Conservation)
	}
	for _, s := range story.Conservation {
		if !s.Conserved || s.SumBefore != s.SupplyBefore || s.SumAfter != s.SupplyAfter || s.SupplyBefore == 0 {
			t.Errorf("not conserved: %+v", s)
		}
	}

	// The testnet is stopped and, without --keep, gone.
	if story.Kept {
		t.Errorf("kept without --keep")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after the demo (%v)", dir, err)
	}
}

// TestDemoHelpAndErrors checks the help's example and that a directory in
// use is refused with what to do instead, before anything starts.
func TestDemoHelpAndErrors(t *testing.T) {
	r := plug(t, nil, "demo", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "plug demo --dir /tmp/plug-demo --keep") {
		t.Errorf("plug demo --help: exit %d\n%s", r.code, r.stdout)
	}
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/x", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r = plug(t, nil, "demo", "--dir", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "give a new or empty directory") {
		t.Errorf("plug demo --dir NONEMPTY: exit %d\nstderr: %s", r.code, r.stderr)
	}
}
