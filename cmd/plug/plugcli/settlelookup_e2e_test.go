package plugcli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/settlement"
	"github.com/plugchain/plug/testnet"
)

// TestTradesFromChainsE2E runs `plug testnet up --chains 2` (one validator
// per chain and a relay, real processes) and settles a DvP with `plug settle
// dvp`; then, with the submitter's trade store deleted, each plug run from a
// fresh HOME finds the trade on the chains by its full id, by alice's
// reference (with --testnet, and with --node only, as an operator without
// the testnet directory would), and sees both legs committed. A trade aborted
// at its deadline reports exit 0 with the deadline in RFC 3339, and
// `plug settle history` lists it with its proof.
func TestTradesFromChainsE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two chains and a relay; skipped with -short")
	}
	start := time.Now()
	dir := filepath.Join(t.TempDir(), "tn")
	var up testnet.Report
	ok(t, &up, nil, "testnet", "up", "--dir", dir, "--chains", "2", "--validators", "1", "--detach", "-o", "json")
	t.Cleanup(func() { plug(t, nil, "testnet", "down", "--dir", dir) })
	if len(up.Chains) != 2 || len(up.Relays) != 1 {
		t.Fatalf("up: want 2 chains and a relay, got %+v", up)
	}
	var nodes []string
	for _, c := range up.Chains {
		nodes = append(nodes, "--node", c.ChainID+"="+c.Nodes[0].HTTP)
	}
	dvp := func(extra ...string) []string {
		return append([]string{"settle", "dvp", "--testnet", dir, "--seller", "alice", "--buyer", "bob",
			"--coordinator", "alpha", "--wait", "--timeout", "40s", "-o", "json"}, extra...)
	}
	// A leg's amount with a point is in whole units: too many digits for
	// EUR's 2 decimals is refused before anything is signed.
	fails(t, "3 digits after the point; the asset has 2 decimals", nil, dvp("--delivery", "alpha:EUR:0.105", "--payment", "beta:USD:11", "--ref", "T-e2e-0")...)
	var done settleOut
	ok(t, &done, nil, dvp("--delivery", "alpha:EUR:0.10", "--payment", "beta:USD:11", "--ref", "T-e2e-1")...)
	if done.State != settlement.Committed || !done.Final {
		t.Fatalf("dvp: %+v", done.Status)
	}
	alice := done.Legs[0].From.String()

	// The submitter's trade store is gone; every run below has a fresh HOME.
	if err := os.RemoveAll(filepath.Join(dir, "settlements")); err != nil {
		t.Fatal(err)
	}
	committed := func(what string, o settleOut) {
		t.Helper()
		if o.ID != done.ID || o.State != settlement.Committed || !o.Final || len(o.Legs) != 2 || o.Found == nil || o.Found.Source != "chain" {
			t.Fatalf("%s: %+v found %+v", what, o.Status, o.Found)
		}
		for _, l := range o.Legs {
			if l.Status != "committed" {
				t.Fatalf("%s: leg %d on %s is %s", what, l.Leg, l.Chain, l.Status)
			}
		}
	}
	var o settleOut
	ok(t, &o, nil, "xchain", "status", done.ID, "--testnet", dir, "--output", "json")
	committed("by id", o)
	o = settleOut{}
	ok(t, &o, nil, "xchain", "status", "--ref", "T-e2e-1", "--party", "alice", "--testnet", dir, "--prove", "--output", "json")
	committed("by ref", o)
	if !o.Found.Verified || !o.Legs[0].Verified || !o.Legs[1].Verified {
		t.Fatalf("by ref with --prove: not proven: %+v", o.Status)
	}
	o = settleOut{}
	ok(t, &o, nil, append([]string{"settle", "status", "--ref", "T-e2e-1", "--party", alice, "--output", "json"}, nodes...)...)
	committed("by ref through --node", o)
	// GET /v1/xtx/{id} on the coordinator: the terms, its leg and the
	// decision, each proven against the state root of one height.
	checkXTxView(t, up.Chains[0].Nodes[0].HTTP, done.ID)

	// The short id the tools print, from a machine that never saw the trade:
	// the chains' transaction indexes are searched.
	o = settleOut{}
	ok(t, &o, nil, "xchain", "status", done.ID[:12], "--testnet", dir, "--output", "json")
	committed("by short id", o)
	fails(t, "no trade with an id starting", nil, "xchain", "status", "00000000", "--testnet", dir)

	// A trade that aborts at its deadline: the settle command fails, the
	// status query does not; the reason names the deadline in RFC 3339.
	r := plug(t, nil, dvp("--delivery", "alpha:EUR:1", "--payment", "beta:USD:1", "--ref", "T-e2e-late", "--deadline", "1ms")...)
	if r.code != 1 || !strings.Contains(r.stdout, `"aborted"`) {
		t.Fatalf("late dvp: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var late settleOut
	ok(t, &late, nil, "xchain", "status", "--ref", "T-e2e-late", "--party", "alice", "--testnet", dir, "--output", "json")
	if late.State != settlement.Aborted || !late.Final || !rfc3339Deadline.MatchString(late.Reason) || late.DeadlineTime == "" {
		t.Fatalf("aborted trade: %+v", late.Status)
	}
	ok(t, nil, nil, "settle", "status", late.ID[:12], "--testnet", dir) // its prefix, through the store

	// The party's trades from the chains: both, newest deadline first (the
	// late one's deadline passed at once); by state; a page of one and the
	// next.
	var list listOut
	ok(t, &list, nil, "xchain", "list", "--party", "alice", "--testnet", dir, "--output", "json")
	if len(list.Trades) != 2 || list.Trades[0].ID != done.ID || list.Trades[1].ID != late.ID || list.Trades[0].Status != settlement.Committed ||
		list.Trades[1].Status != settlement.Aborted || len(list.Trades[0].Legs) != 2 || list.Next != "" {
		t.Fatalf("list: %+v", list)
	}
	list = listOut{}
	ok(t, &list, nil, append([]string{"xchain", "list", "--party", alice, "--state", "committed", "--output", "json"}, nodes...)...)
	if len(list.Trades) != 1 || list.Trades[0].ID != done.ID {
		t.Fatalf("list --state committed: %+v", list)
	}
	list = listOut{}
	ok(t, &list, nil, "xchain", "list", "--party", "alice", "--limit", "1", "--testnet", dir, "--output", "json")
	if len(list.Trades) != 1 || list.Trades[0].ID != done.ID || list.Next != done.ID {
		t.Fatalf("list page 1: %+v", list)
	}
	next := list.Next
	list = listOut{}
	ok(t, &list, nil, "xchain", "list", "--party", "alice", "--limit", "1", "--after", next, "--testnet", dir, "--output", "json")
	if len(list.Trades) != 1 || list.Trades[0].ID != late.ID || list.Next != "" {
		t.Fatalf("list page 2: %+v", list)
	}
	list = listOut{}
	ok(t, &list, nil, "xchain", "list", "--party", "bob", "--asset", "GBP", "--testnet", dir, "--output", "json")
	if len(list.Trades) != 0 {
		t.Fatalf("list of another asset: %+v", list)
	}

	// History: the store knows the late trade only (the first one's record
	// was deleted), the chains' indexes both; each row is proven on the
	// coordinator.
	r = ok(t, nil, nil, "settle", "history", "--party", "alice", "--testnet", dir, "--output", "csv")
	rows, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil || len(rows) != 3 {
		t.Fatalf("history csv: %v\n%s", err, r.stdout)
	}
	byID := map[string][]string{rows[1][0]: rows[1], rows[2][0]: rows[2]}
	if l, d := byID[late.ID], byID[done.ID]; l == nil || d == nil || l[3] != "aborted" || d[3] != "committed" ||
		l[12] != "alpha" || l[15] != "true" || d[15] != "true" || d[16] != "0.10 EUR; 0.11 USD" {
		t.Fatalf("history csv:\n%s", r.stdout)
	}
	t.Logf("%v", time.Since(start))
}

// checkXTxView reads GET /v1/xtx/{id} from the coordinator's node at base and
// verifies each record's proof against the root it names, and that root
// against the node's certified header of that height.
func checkXTxView(t *testing.T, base, id string) {
	t.Helper()
	resp, err := http.Get(base + "/v1/xtx/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v app.XTxView
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&v) != nil {
		t.Fatalf("GET /v1/xtx/%s: %s", id, resp.Status)
	}
	if v.ID.String() != id || v.Terms.ID().String() != id || len(v.Legs) != 1 || v.Decision == nil || !v.Decision.Found || !v.Decision.Decision.Commit {
		t.Fatalf("xtx view: %+v", v)
	}
	if err := v.TermsProof.VerifyMembership(v.StateRoot, crosschain.XTxKey(v.ID), encoding.MustMarshal(&v.Terms)); err != nil {
		t.Fatalf("terms proof: %v", err)
	}
	l := v.Legs[0]
	if !l.Found || l.Record.Status != crosschain.Committed {
		t.Fatalf("leg: %+v", l)
	}
	if err := l.Proof.VerifyMembership(v.StateRoot, crosschain.LegKey(v.ID, l.Leg), encoding.MustMarshal(l.Record)); err != nil {
		t.Fatalf("leg proof: %v", err)
	}
	if err := v.Decision.Proof.VerifyMembership(v.StateRoot, crosschain.DecisionKey(v.ID), encoding.MustMarshal(v.Decision.Decision)); err != nil {
		t.Fatalf("decision proof: %v", err)
	}
	c, err := client.New([]string{base})
	if err != nil {
		t.Fatal(err)
	}
	h, err := c.Header(context.Background(), v.Height)
	if err != nil || h.Header.StateRoot != v.StateRoot {
		t.Fatalf("header %d: %v (state root %v, the view's %s)", v.Height, err, h, v.StateRoot)
	}
	resp2, err := http.Get(base + "/v1/xtx/" + strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown xtx: %s", resp2.Status)
	}
}
