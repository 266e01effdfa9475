package settlement

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/crosschain"
)

func TestParseIDOrPrefix(t *testing.T) {
	tr := DvP(alice, bob, LegSpec{"alpha", "BOND", 10}, LegSpec{"beta", "USD", 1000})
	x, _ := tr.XTx("alpha", deadline)
	id := x.ID()
	full, prefix, err := ParseIDOrPrefix(strings.ToUpper(id.String()))
	if err != nil || full != id || prefix != "" {
		t.Fatalf("full id: %v %q %v", full, prefix, err)
	}
	for _, n := range []int{8, 12, 63} {
		full, prefix, err := ParseIDOrPrefix(id.String()[:n])
		if err != nil || !full.IsZero() || prefix != id.String()[:n] {
			t.Errorf("prefix of %d: %v %q %v", n, full, prefix, err)
		}
	}
	for _, bad := range []string{"", "abc", id.String()[:7], id.String() + "0", "zz" + id.String()[:10], "T-1234567890"} {
		if _, _, err := ParseIDOrPrefix(bad); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "64 hex digits") {
			t.Errorf("%q: %v, want ErrInvalid naming 64 hex digits", bad, err)
		}
	}
}

func TestLookupID(t *testing.T) {
	ctx := context.Background()
	tr := DvP(alice, bob, LegSpec{"alpha", "BOND", 10}, LegSpec{"beta", "USD", 1000})
	tr.Ref = "T-1"
	x, _ := tr.XTx("alpha", deadline)
	tr.Legs[1].Amount = 999
	y, _ := tr.XTx("beta", deadline)
	alpha, beta := fakeChain{}, fakeChain{}
	chains := map[string]Reader{"alpha": provenChain{alpha}, "beta": beta}
	if _, err := LookupID(ctx, chains, []string{"alpha", "beta"}, x.ID(), false); !errors.Is(err, ErrTradeNotFound) {
		t.Fatalf("no chain has it: %v, want ErrTradeNotFound", err)
	}
	beta[crosschain.XTxKey(x.ID())] = x
	got, err := LookupID(ctx, chains, []string{"alpha", "beta"}, x.ID(), true)
	if err != nil || got.Chain != "beta" || got.XTx.ID() != x.ID() || got.Verified {
		t.Fatalf("on beta: %+v %v", got, err)
	}
	alpha[crosschain.XTxKey(x.ID())] = x
	got, err = LookupID(ctx, chains, []string{"alpha", "beta"}, x.ID(), true)
	if err != nil || got.Chain != "alpha" || !got.Verified {
		t.Fatalf("on alpha, proven: %+v %v", got, err)
	}
	// A node answering with other terms is caught.
	alpha[crosschain.XTxKey(x.ID())] = y
	if _, err := LookupID(ctx, chains, []string{"alpha", "beta"}, x.ID(), false); err == nil || errors.Is(err, ErrTradeNotFound) {
		t.Fatalf("substituted terms: %v", err)
	}
	if _, err := LookupID(ctx, chains, []string{"gamma"}, x.ID(), false); !errors.Is(err, ErrNoChain) {
		t.Fatalf("unknown chain: %v", err)
	}
}

func TestFindRef(t *testing.T) {
	ctx := context.Background()
	tr := DvP(alice, bob, LegSpec{"alpha", "BOND", 10}, LegSpec{"beta", "USD", 1000})
	tr.Ref = "T-1"
	x, _ := tr.XTx("alpha", deadline) // the trade that holds bob's T-1 on its coordinator
	tr.Legs[1].Amount = 999
	y, _ := tr.XTx("alpha", deadline) // another under T-1, whose prepare ran first on beta
	alpha, beta := fakeChain{}, fakeChain{}
	chains := map[string]Reader{"alpha": alpha, "beta": beta}
	if _, _, err := FindRef(ctx, chains, []string{"alpha", "beta"}, bob, "T-1", false); !errors.Is(err, ErrRefNotFound) {
		t.Fatalf("no record: %v", err)
	}
	beta[crosschain.RefKey(bob, "T-1")] = crosschain.RefRecord{ID: y.ID(), Ref: "T-1"}
	beta[crosschain.XTxKey(y.ID())] = y
	alpha[crosschain.RefKey(bob, "T-1")] = crosschain.RefRecord{ID: x.ID(), Ref: "T-1"}
	alpha[crosschain.XTxKey(x.ID())] = x
	got, others, err := FindRef(ctx, chains, []string{"beta", "alpha"}, bob, "T-1", false)
	if err != nil || got.ID != x.ID() || got.Chain != "alpha" || len(others) != 1 || others[0] != y.ID() {
		t.Fatalf("want x from its coordinator and y among the others: %+v %v %v", got, others, err)
	}
}

func TestQueryTimes(t *testing.T) {
	tr := DvP(alice, bob, LegSpec{"alpha", "BOND", 10}, LegSpec{"beta", "USD", 1000})
	x, _ := tr.XTx("alpha", deadline)
	id := x.ID()
	alpha, beta := fakeChain{}, fakeChain{}
	reason := "deadline " + strconv.FormatInt(x.Deadline, 10) + " passed (coordinator time " + strconv.FormatInt(x.Deadline+5, 10) + ")"
	alpha[crosschain.DecisionKey(id)] = crosschain.Decision{Reason: reason, Height: 7, Time: x.Deadline + 5}
	st, err := Query(context.Background(), &x, map[string]Reader{"alpha": alpha, "beta": beta}, false)
	if err != nil {
		t.Fatal(err)
	}
	dl := crosschain.FormatMillis(x.Deadline)
	if st.State != Aborted || st.Deadline != x.Deadline || st.DeadlineTime != dl || st.DecidedAt != x.Deadline+5 ||
		st.DecidedAtTime != crosschain.FormatMillis(x.Deadline+5) || !strings.Contains(st.Reason, "deadline "+dl+" passed") {
		t.Fatalf("status %+v", st)
	}
	if st.DecisionProof == nil || st.DecisionProof.Chain != "alpha" || st.DecisionProof.Key != crosschain.DecisionKey(id) {
		t.Fatalf("decision proof %+v", st.DecisionProof)
	}
}

// downChain is a chain that cannot be read.
type downChain struct{}

func (downChain) State(context.Context, uint64, string, bool) (*client.StateResult, error) {
	return nil, errors.New("connection refused")
}

func TestLookupIDChainDown(t *testing.T) {
	ctx := context.Background()
	x, _ := DvP(alice, bob, LegSpec{"alpha", "BOND", 10}, LegSpec{"beta", "USD", 1000}).XTx("alpha", deadline)
	beta := fakeChain{crosschain.XTxKey(x.ID()): x}
	chains := map[string]Reader{"alpha": downChain{}, "beta": beta}
	if got, err := LookupID(ctx, chains, []string{"alpha", "beta"}, x.ID(), false); err != nil || got.Chain != "beta" {
		t.Fatalf("alpha down, beta holds it: %+v %v", got, err)
	}
	delete(beta, crosschain.XTxKey(x.ID()))
	if _, err := LookupID(ctx, chains, []string{"alpha", "beta"}, x.ID(), false); err == nil || errors.Is(err, ErrTradeNotFound) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("alpha down, beta without it: %v, want alpha's error", err)
	}
}
