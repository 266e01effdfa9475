package settlement

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/crosschain"
)

func TestTradeRef(t *testing.T) {
	tr := DvP(alice, bob, LegSpec{"alpha", "BOND", 10}, LegSpec{"beta", "USD", 1000})
	tr.Ref = "T-1"
	x, err := tr.XTx("", deadline)
	if err != nil {
		t.Fatal(err)
	}
	if x.Ref != "T-1" || x.Memo != "" || x.Nonce != refNonce("T-1") {
		t.Fatalf("xtx ref %q, memo %q, nonce %d: want the ref in Ref, no memo, the nonce from the ref", x.Ref, x.Memo, x.Nonce)
	}
	for _, bad := range []string{strings.Repeat("r", crosschain.MaxRef+1), "T-1\n", "T\x00", "T-\u202e1", "\xff"} {
		tr.Ref = bad
		if _, err := tr.XTx("", deadline); !errors.Is(err, ErrInvalid) {
			t.Errorf("ref %q: %v, want ErrInvalid", bad, err)
		}
	}
	tr.Ref = strings.Repeat("é", crosschain.MaxRef/2)
	if _, err := tr.XTx("", deadline); err != nil {
		t.Errorf("a ref of %d bytes of printable UTF-8: %v", len(tr.Ref), err)
	}
}

func TestSameTerms(t *testing.T) {
	tr := DvP(alice, bob, LegSpec{"alpha", "BOND", 10}, LegSpec{"beta", "USD", 1000})
	tr.Ref = "T-1"
	x, _ := tr.XTx("alpha", deadline)
	later, _ := tr.XTx("alpha", deadline.Add(time.Hour))
	swapped := later
	swapped.Legs = []crosschain.Leg{later.Legs[1], later.Legs[0]}
	swapped.Memo = "again"
	if !SameTerms(&x, &later) || !SameTerms(&x, &swapped) {
		t.Fatal("the same trade with another deadline, leg order or memo is not the same terms")
	}
	other := func(edit func(*crosschain.XTx)) *crosschain.XTx {
		y, _ := tr.XTx("alpha", deadline)
		edit(&y)
		return &y
	}
	for name, y := range map[string]*crosschain.XTx{
		"coordinator": other(func(y *crosschain.XTx) { y.Coordinator = "beta" }),
		"ref":         other(func(y *crosschain.XTx) { y.Ref = "T-2" }),
		"amount":      other(func(y *crosschain.XTx) { y.Legs[1].Amount++ }),
		"recipient":   other(func(y *crosschain.XTx) { y.Legs[0].To = carol }),
		"kind":        other(func(y *crosschain.XTx) { y.Legs[0].Kind = crosschain.Out }),
		"one leg":     other(func(y *crosschain.XTx) { y.Legs = y.Legs[:1] }),
	} {
		if SameTerms(&x, y) {
			t.Errorf("another %s gives the same terms", name)
		}
	}
}

// provenChain answers as a client asked to prove does: every answer verified.
type provenChain struct{ fakeChain }

func (p provenChain) State(ctx context.Context, h uint64, key string, prove bool) (*client.StateResult, error) {
	r, err := p.fakeChain.State(ctx, h, key, prove)
	if r != nil {
		r.Verified = prove
	}
	return r, err
}

func TestLookupRef(t *testing.T) {
	ctx := context.Background()
	tr := DvP(alice, bob, LegSpec{"alpha", "BOND", 10}, LegSpec{"beta", "USD", 1000})
	tr.Ref = "T-1"
	x, _ := tr.XTx("alpha", deadline)
	tr.Legs[1].Amount = 999
	y, _ := tr.XTx("beta", deadline)
	alpha, beta := fakeChain{}, fakeChain{}
	chains := map[string]Reader{"alpha": provenChain{alpha}, "beta": beta}

	if _, err := LookupRef(ctx, chains, []string{"alpha", "beta"}, bob, "T-1", false); !errors.Is(err, ErrRefNotFound) {
		t.Fatalf("no record: %v, want ErrRefNotFound", err)
	}
	// beta knows y under bob's T-1; alpha, asked first, knows x.
	beta[crosschain.RefKey(bob, "T-1")] = crosschain.RefRecord{ID: y.ID(), Ref: "T-1"}
	beta[crosschain.XTxKey(y.ID())] = y
	got, err := LookupRef(ctx, chains, []string{"alpha", "beta"}, bob, "T-1", false)
	if err != nil || got.ID != y.ID() || got.Chain != "beta" || got.XTx.Coordinator != "beta" || got.Verified {
		t.Fatalf("lookup on beta: %+v, %v", got, err)
	}
	alpha[crosschain.RefKey(bob, "T-1")] = crosschain.RefRecord{ID: x.ID(), Ref: "T-1"}
	alpha[crosschain.XTxKey(x.ID())] = x
	got, err = LookupRef(ctx, chains, []string{"alpha", "beta"}, bob, "T-1", true)
	if err != nil || got.ID != x.ID() || got.Chain != "alpha" || !SameTerms(&got.XTx, &x) || !got.Verified {
		t.Fatalf("lookup, coordinator first: %+v, %v", got, err)
	}
	if _, err := LookupRef(ctx, chains, []string{"alpha"}, carol, "T-1", false); !errors.Is(err, ErrRefNotFound) {
		t.Fatalf("another party's ref: %v, want ErrRefNotFound", err)
	}

	// A node that answers with other terms than the record names is caught.
	alpha[crosschain.XTxKey(x.ID())] = y
	if _, err := LookupRef(ctx, chains, []string{"alpha"}, bob, "T-1", false); err == nil || errors.Is(err, ErrRefNotFound) {
		t.Fatalf("substituted terms: %v", err)
	}
	delete(alpha, crosschain.XTxKey(x.ID()))
	if _, err := LookupRef(ctx, chains, []string{"alpha"}, bob, "T-1", false); err == nil || errors.Is(err, ErrRefNotFound) {
		t.Fatalf("missing terms: %v", err)
	}
	if _, err := LookupRef(ctx, chains, []string{"gamma"}, bob, "T-1", false); !errors.Is(err, ErrNoChain) {
		t.Fatalf("unknown chain: %v, want ErrNoChain", err)
	}
	for _, bad := range []string{"", "T\n1"} {
		if _, err := LookupRef(ctx, chains, []string{"alpha"}, bob, bad, false); !errors.Is(err, ErrInvalid) {
			t.Errorf("ref %q: %v, want ErrInvalid", bad, err)
		}
	}
}
