package crosschain_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/crosschain"
)

// supplyOf reads an asset's supply on c.
func supplyOf(c *chain, a string) uint64 {
	var n uint64
	c.get(asset.SupplyKey(a), &n)
	return n
}

// wantMinting checks what c's prepared In legs reserve of asset a.
func wantMinting(t *testing.T, c *chain, a string, want uint64) {
	t.Helper()
	var n uint64
	c.get(crosschain.MintingKey(a), &n)
	if n != want {
		t.Fatalf("%s reserves %d %s for arriving legs, want %d", c.id, n, a, want)
	}
}

// crossTx is an Out leg on alpha and its In leg on beta: amount of USD from alice
// to bob, coordinated by alpha.
func crossTx(w *world, amount uint64) crosschain.XTx {
	return crosschain.XTx{Coordinator: "alpha", Deadline: w.now + 60_000, Legs: []crosschain.Leg{
		{Chain: "alpha", Asset: "USD", From: addr(alice), To: addr(bob), Amount: amount, Kind: crosschain.Out},
		{Chain: "beta", Asset: "USD", From: addr(alice), To: addr(bob), Amount: amount, Kind: crosschain.In},
	}}
}

// TestOutInCommit: the Out leg burns on its chain, the In leg mints on its own, and
// the supply summed over both chains is what it was.
func TestOutInCommit(t *testing.T) {
	w := newWorld(t, "alpha", "beta")
	a, b := w.chains["alpha"], w.chains["beta"]
	sa0, sb0 := supplyOf(a, "USD"), supplyOf(b, "USD")
	x := crossTx(w, 250)
	s := signed(t, x, alice)
	p0, p1 := w.prepare(s, 0, relayer), w.prepare(s, 1, relayer)
	w.step()
	mustOK(t, p0, p1)
	wantBalance(t, a, "USD", alice, funds-250)
	wantBalance(t, b, "USD", bob, funds) // nothing arrives before the commit
	wantMinting(t, b, "USD", 250)
	d := w.decide(x, relayer)
	w.step()
	mustOK(t, d)
	wantLeg(t, a, x, 0, crosschain.Committed) // the Out leg burnt by the decide
	if sa := supplyOf(a, "USD"); sa != sa0-250 {
		t.Fatalf("alpha supply %d after the decide, want %d", sa, sa0-250)
	}
	q0, q1 := w.finish(x, 0, relayer), w.finish(x, 1, relayer)
	w.step()
	mustFail(t, q0, crosschain.ErrAlreadyFinished)
	mustOK(t, q1)
	wantBalance(t, a, "USD", alice, funds-250)
	wantBalance(t, a, "USD", bob, funds) // bob is paid on beta, not alpha
	wantBalance(t, b, "USD", bob, funds+250)
	wantBalance(t, b, "USD", alice, funds)
	if sa, sb := supplyOf(a, "USD"), supplyOf(b, "USD"); sa != sa0-250 || sb != sb0+250 {
		t.Fatalf("supplies alpha %d beta %d, want %d and %d", sa, sb, sa0-250, sb0+250)
	}
	wantMinting(t, b, "USD", 0)
	checkConservation(t, w, 0)
	// A replayed finish mints nothing more.
	r := w.finish(x, 1, relayer)
	w.step()
	mustFail(t, r, crosschain.ErrAlreadyFinished)
	wantBalance(t, b, "USD", bob, funds+250)
}

// TestOutInAbort: the payer lacks the funds; the In leg's reservation is released
// and nothing is minted, the supplies are unchanged.
func TestOutInAbort(t *testing.T) {
	w := newWorld(t, "alpha", "beta")
	a, b := w.chains["alpha"], w.chains["beta"]
	sa0, sb0 := supplyOf(a, "USD"), supplyOf(b, "USD")
	x := crossTx(w, funds+1)
	s := signed(t, x, alice)
	p0, p1 := w.prepare(s, 0, relayer), w.prepare(s, 1, relayer)
	w.step()
	mustOK(t, p0, p1)
	wantLeg(t, a, x, 0, crosschain.Refused)
	wantLeg(t, b, x, 1, crosschain.Prepared)
	d := w.decide(x, relayer)
	w.step()
	mustOK(t, d)
	q0, q1 := w.finish(x, 0, relayer), w.finish(x, 1, relayer)
	w.step()
	mustFail(t, q0, crosschain.ErrAlreadyFinished) // the decide aborted it
	mustOK(t, q1)
	wantLeg(t, a, x, 0, crosschain.Aborted)
	wantLeg(t, b, x, 1, crosschain.Aborted)
	wantBalance(t, a, "USD", alice, funds)
	wantBalance(t, b, "USD", bob, funds)
	if sa, sb := supplyOf(a, "USD"), supplyOf(b, "USD"); sa != sa0 || sb != sb0 {
		t.Fatalf("supplies alpha %d beta %d, want %d and %d", sa, sb, sa0, sb0)
	}
	wantMinting(t, b, "USD", 0)
	checkConservation(t, w, 0)
}

// TestOutInShape: Out and In legs must pair up exactly.
func TestOutInShape(t *testing.T) {
	w := newWorld(t, "alpha", "beta")
	good := crossTx(w, 5)
	if err := good.Check(); err != nil {
		t.Fatalf("a cross transfer: %v", err)
	}
	cases := map[string]func(x *crosschain.XTx){
		"out alone":        func(x *crosschain.XTx) { x.Legs = x.Legs[:1] },
		"in alone":         func(x *crosschain.XTx) { x.Legs = x.Legs[1:] },
		"in before out":    func(x *crosschain.XTx) { x.Legs[0], x.Legs[1] = x.Legs[1], x.Legs[0] },
		"amounts differ":   func(x *crosschain.XTx) { x.Legs[1].Amount = 6 },
		"assets differ":    func(x *crosschain.XTx) { x.Legs[1].Asset = "SEC" },
		"payee differs":    func(x *crosschain.XTx) { x.Legs[1].To = addr(carol) },
		"one chain":        func(x *crosschain.XTx) { x.Legs[1].Chain = "alpha" },
		"unknown kind":     func(x *crosschain.XTx) { x.Legs[1].Kind = "sideways" },
		"in after a move":  func(x *crosschain.XTx) { x.Legs[0].Kind = crosschain.Move },
		"out then a move":  func(x *crosschain.XTx) { x.Legs[1].Kind = crosschain.Move },
		"payer differs in": func(x *crosschain.XTx) { x.Legs[1].From = addr(carol) },
	}
	for name, mutate := range cases {
		x := crossTx(w, 5)
		x.Legs = append([]crosschain.Leg(nil), x.Legs...)
		mutate(&x)
		if err := x.Check(); !errors.Is(err, crosschain.ErrMalformed) {
			t.Errorf("%s: Check = %v, want ErrMalformed", name, err)
		}
	}
	// A malformed pair is refused by prepare and changes nothing.
	x := crossTx(w, 5)
	x.Legs[1].Amount = 6
	p := w.prepare(signed(t, x, alice), 0, relayer)
	w.step()
	mustFail(t, p, crosschain.ErrMalformed)
	wantBalance(t, w.chains["alpha"], "USD", alice, funds)
}

// TestInLegSupplyCap: an In leg reserves its amount against the asset's supply
// cap on its chain, so two arriving transfers cannot together mint past it: the
// second is refused, the whole transfer aborts and its payer is refunded.
func TestInLegSupplyCap(t *testing.T) {
	w := newWorld(t, "alpha", "beta")
	a, b := w.chains["alpha"], w.chains["beta"]
	// CAP: uncapped on alpha, where alice holds 1,000; at most 1,500 on beta,
	// where 1,000 exist already.
	setup := []*pending{
		a.submit("create", &asset.Create{Asset: "CAP", Definition: asset.Definition{Issuer: "admin"}}, admin),
		b.submit("create", &asset.Create{Asset: "CAP", Definition: asset.Definition{Issuer: "admin", MaxSupply: 1500}}, admin),
	}
	w.step()
	setup = append(setup,
		a.submit("issue", &asset.Issue{Asset: "CAP", To: addr(alice), Amount: 1000}, admin),
		b.submit("issue", &asset.Issue{Asset: "CAP", To: addr(carol), Amount: 1000}, admin))
	w.step()
	mustOK(t, setup...)
	move := func(amount uint64, nonce uint64) crosschain.XTx {
		x := crossTx(w, amount)
		x.Nonce = nonce
		for i := range x.Legs {
			x.Legs[i].Asset = "CAP"
		}
		return x
	}
	x1, x2 := move(300, 1), move(300, 2) // 1,000 + 300 fits, + 300 more does not
	s1, s2 := signed(t, x1, alice), signed(t, x2, alice)
	ps := []*pending{w.prepare(s1, 0, relayer), w.prepare(s1, 1, relayer), w.prepare(s2, 0, relayer), w.prepare(s2, 1, relayer)}
	w.step()
	mustOK(t, ps...)
	wantLeg(t, b, x1, 1, crosschain.Prepared)
	if r := wantLeg(t, b, x2, 1, crosschain.Refused); !strings.Contains(r.Reason, "supply cap 1500") {
		t.Fatalf("refusal reason %q", r.Reason)
	}
	d1, d2 := w.decide(x1, relayer), w.decide(x2, relayer)
	w.step()
	mustOK(t, d1, d2)
	var fs []*pending
	for _, x := range []crosschain.XTx{x1, x2} {
		want := crosschain.Committed // leg 0 is the coordinator's, finished by the decide
		if x.ID() == x2.ID() {
			want = crosschain.Aborted
		}
		wantLeg(t, a, x, 0, want)
		fs = append(fs, w.finish(x, 1, relayer))
	}
	w.step()
	mustOK(t, fs...)
	wantLeg(t, a, x2, 0, crosschain.Aborted)
	wantBalance(t, a, "CAP", alice, 700) // 300 left for beta; the refused 300 came back
	wantBalance(t, b, "CAP", bob, 300)
	if sa, sb := supplyOf(a, "CAP"), supplyOf(b, "CAP"); sa != 700 || sb != 1300 {
		t.Fatalf("CAP supplies alpha %d beta %d, want 700 and 1300", sa, sb)
	}
	wantMinting(t, b, "CAP", 0)
	checkConservation(t, w, 0)
}
