package plugcli

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/settlement"
)

// rfc3339Deadline is how a reason names a deadline for people.
var rfc3339Deadline = regexp.MustCompile(`deadline \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)

func TestStoreIDByPrefix(t *testing.T) {
	dir := t.TempDir()
	x := &xenv{env: &env{out: &output{w: io.Discard, errw: io.Discard}}, store: dir}
	a, b := crypto.Address{1}, crypto.Address{2}
	var ids []string
	for i := range 40 {
		tr := settlement.DvP(a, b, settlement.LegSpec{Chain: "alpha", Asset: "EUR", Amount: uint64(i + 1)}, settlement.LegSpec{Chain: "beta", Asset: "USD", Amount: 1})
		tr.Ref = "T-" + strings.Repeat("x", i+1)
		xt, err := tr.XTx("alpha", time.Unix(1e9, 0))
		if err != nil {
			t.Fatal(err)
		}
		if err := saveRecord(dir, record{Kind: tr.Kind, XTx: xt, Submitted: time.Now()}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, xt.ID().String())
	}
	got, _, err := x.storeIDByPrefix(ids[3][:12])
	if err != nil || got.String() != ids[3] {
		t.Fatalf("12-digit prefix: %v %v", got, err)
	}
	if _, n, err := x.storeIDByPrefix("00000000"[:8]); err == nil || n != 0 || !strings.Contains(err.Error(), "no trade 00000000") {
		// (a miss, unless one of 40 ids starts with 8 zeros)
		t.Fatalf("unknown prefix: %v", err)
	}
	// Two ids sharing a first hex digit: a 1-digit prefix would be ambiguous;
	// the store lookup says so (ParseIDOrPrefix refuses below 8 digits, so
	// call it directly).
	first := map[byte]int{}
	for _, id := range ids {
		first[id[0]]++
	}
	for c, n := range first {
		if n > 1 {
			if _, _, err := x.storeIDByPrefix(string(c)); err == nil || !strings.Contains(err.Error(), "give more digits") {
				t.Fatalf("ambiguous prefix %c: %v", c, err)
			}
			break
		}
	}
	recs, err := x.storeRecords()
	if err != nil || len(recs) != 40 {
		t.Fatalf("records: %d %v", len(recs), err)
	}
	x.store = filepath.Join(dir, "none")
	if recs, err := x.storeRecords(); err != nil || len(recs) != 0 {
		t.Fatalf("no store: %v %v", recs, err)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 4, 15, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2026-12-01T09:00:00Z": time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC),
		"2026-12-01":           time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		"24h":                  now.Add(-24 * time.Hour),
	} {
		if got, err := parseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "-1h", "2026-13-01"} {
		if _, err := parseSince(bad, now); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestStatusArgs: what the status commands refuse before reading a chain.
func TestStatusArgs(t *testing.T) {
	id := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"xchain", "status", "--node", "alpha=http://127.0.0.1:1"}, "give the trade's id"},
		{[]string{"xchain", "status", "T-1", "--node", "alpha=http://127.0.0.1:1"}, "64 hex digits, or a prefix of at least 8"},
		{[]string{"xchain", "status", "abc1234", "--node", "alpha=http://127.0.0.1:1"}, "64 hex digits"},
		{[]string{"settle", "status", id, "--ref", "T-1", "--node", "alpha=http://127.0.0.1:1"}, "not both"},
		{[]string{"settle", "status", "--party", "alice", "--node", "alpha=http://127.0.0.1:1"}, "give --ref too"},
		{[]string{"settle", "status", "abcdef123456", "--node", "alpha=http://127.0.0.1:1", "--store", t.TempDir()}, "no node reachable"}, // not in the store: the chains are searched
		{[]string{"settle", "status", "--ref", "T-1", "--node", "alpha=http://127.0.0.1:1", "--store", t.TempDir()}, "give --party"},
		{[]string{"settle", "history", "--node", "alpha=http://127.0.0.1:1"}, "missing --party"},
		{[]string{"settle", "history", "--party", strings.Repeat("0a", 20), "--since", "soon", "--node", "alpha=http://127.0.0.1:1"}, "--since"},
	} {
		code, _, errs := runPlug(tc.args...)
		if code != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("plug %s: exit %d, stderr %q, want 1 and %q", strings.Join(tc.args, " "), code, errs, tc.want)
		}
	}
}

// TestStatusFromChains: with its store gone, a trade is found on the chain by
// id and by reference; an aborted trade's status exits 0.
func TestStatusFromChains(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a chain")
	}
	s := startSettleNet(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.relay(ctx, t); close(done) }()
	defer func() { cancel(); <-done }()

	settle := func(wantCode int, extra ...string) settleOut {
		t.Helper()
		code, out, errs := runPlug(append([]string{"settle", "dvp", "--testnet", s.dir, "--seller", "alice", "--buyer", "bob",
			"--wait", "--timeout", "30s", "--output", "json"}, extra...)...)
		var o settleOut
		if code != wantCode || json.Unmarshal([]byte(out), &o) != nil || !o.Final {
			t.Fatalf("dvp %v: exit %d, want %d\n%s\n%s", extra, code, wantCode, out, errs)
		}
		return o
	}
	ok := settle(0, "--delivery", "alpha:EUR:3", "--payment", "alpha:USD:4", "--ref", "T-found")
	late := settle(1, "--delivery", "alpha:EUR:1", "--payment", "alpha:USD:1", "--ref", "T-late", "--deadline", "1ms")
	if late.State != settlement.Aborted || !rfc3339Deadline.MatchString(late.Reason) {
		t.Fatalf("late trade: %s, reason %q", late.State, late.Reason)
	}
	if err := os.RemoveAll(filepath.Join(s.dir, "settlements")); err != nil {
		t.Fatal(err)
	}
	status := func(args ...string) settleOut {
		t.Helper()
		code, out, errs := runPlug(append(args, "--testnet", s.dir, "--output", "json")...)
		var o settleOut
		if code != 0 || json.Unmarshal([]byte(out), &o) != nil {
			t.Fatalf("plug %v: exit %d\n%s\n%s", args, code, out, errs)
		}
		return o
	}
	for _, args := range [][]string{
		{"xchain", "status", ok.ID},
		{"settle", "status", "--ref", "T-found", "--party", "alice", "--prove"},
		{"settle", "status", "--ref", "T-found", "--party", s.alice.String()},
	} {
		o := status(args...)
		if o.ID != ok.ID || o.State != settlement.Committed || o.Found == nil || o.Found.Source != "chain" || o.Found.FoundOn != "alpha" {
			t.Fatalf("%v: %+v found %+v", args, o.Status, o.Found)
		}
		if slices.Contains(args, "--prove") && (!o.Found.Verified || !o.Legs[0].Verified || o.DecisionProof == nil || !o.DecisionProof.Verified) {
			t.Fatalf("%v: not proven: %+v", args, o.Status)
		}
	}
	o := status("settle", "status", late.ID)
	if o.State != settlement.Aborted || !rfc3339Deadline.MatchString(o.Reason) || o.DeadlineTime != crosschain.FormatMillis(o.Deadline) {
		t.Fatalf("aborted trade: %+v", o.Status)
	}
	code, _, errs := runPlug("settle", "status", "--ref", "T-none", "--party", "alice", "--testnet", s.dir)
	if code != 1 || !strings.Contains(errs, "no trade of alice under reference") {
		t.Fatalf("unknown ref: exit %d %s", code, errs)
	}
	code, _, errs = runPlug("settle", "status", strings.Repeat("0", 64), "--testnet", s.dir)
	if code != 1 || !strings.Contains(errs, "on none of the chains") {
		t.Fatalf("unknown id: exit %d %s", code, errs)
	}
}
