package crosschain_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/spv"
)

// refHolder returns the XTx that holds party's ref on c, or the zero hash.
func (c *chain) refHolder(party crypto.PrivateKey, ref string) hash.Hash {
	var r crosschain.RefRecord
	c.get(crosschain.RefKey(addr(party), ref), &r)
	return r.ID
}

// wantTerms checks that c keeps the terms of x.
func wantTerms(t *testing.T, c *chain, x crosschain.XTx) {
	t.Helper()
	var got crosschain.XTx
	if !c.get(crosschain.XTxKey(x.ID()), &got) || got.ID() != x.ID() {
		t.Fatalf("%s does not keep the terms of %s", c.id, x.ID().Short())
	}
}

// takenBy is the reason a leg or decision gives when party's ref is held by x.
func takenBy(ref string, party crypto.PrivateKey, x crosschain.XTx) string {
	return fmt.Sprintf("ref %q of %s is already used by trade %s", ref, addr(party), x.ID().Short())
}

// TestRefRefusedAtPrepare: a second trade under the reference of a trade a
// chain prepared (same parties, other terms) is refused there, in the same
// block or later, and escrows nothing; the record keeps naming the first.
// The first trade's other leg on the same chain is not refused by its own
// reference, and the chain keeps the terms of both trades.
func TestRefRefusedAtPrepare(t *testing.T) {
	w := newWorld(t, "alpha", "beta")
	a, b := w.chains["alpha"], w.chains["beta"]
	x := crosschain.XTx{Legs: []crosschain.Leg{
		{Chain: "alpha", Asset: "SEC", From: addr(alice), To: addr(bob), Amount: 10},
		{Chain: "beta", Asset: "USD", From: addr(bob), To: addr(alice), Amount: 1000},
		{Chain: "beta", Asset: "SEC", From: addr(alice), To: addr(bob), Amount: 3},
	}, Coordinator: "alpha", Deadline: w.now + 60_000, Ref: "T-1"}
	y := x
	y.Legs = append([]crosschain.Leg(nil), x.Legs...)
	y.Legs[1].Amount = 999
	sx, sy := signed(t, x, alice, bob), signed(t, y, alice, bob)

	px, py := w.prepare(sx, 1, bob), w.prepare(sy, 1, bob) // one block: x first
	w.step()
	mustOK(t, px, py)
	wantLeg(t, b, x, 1, crosschain.Prepared)
	if r := wantLeg(t, b, y, 1, crosschain.Refused); r.Reason != takenBy("T-1", alice, x) {
		t.Fatalf("refusal %q, want %q", r.Reason, takenBy("T-1", alice, x))
	}
	wantBalance(t, b, "USD", bob, funds-1000)
	checkConservation(t, w, 1)
	for _, p := range []crypto.PrivateKey{alice, bob} {
		if got := b.refHolder(p, "T-1"); got != x.ID() {
			t.Fatalf("beta: T-1 of %s held by %s, want %s", addr(p), got.Short(), x.ID().Short())
		}
	}
	wantTerms(t, b, x)
	wantTerms(t, b, y)

	// x's second leg on beta, and y's leg on alpha, a block later.
	px2, py0 := w.prepare(sx, 2, alice), w.prepare(sy, 0, alice)
	w.step()
	mustOK(t, px2, py0)
	wantLeg(t, b, x, 2, crosschain.Prepared)
	wantLeg(t, a, y, 0, crosschain.Prepared) // alpha knew no T-1 yet
	if got := a.refHolder(alice, "T-1"); got != y.ID() {
		t.Fatalf("alpha: T-1 held by %s, want y", got.Short())
	}
	// x's leg on alpha is now refused there: y holds T-1 on alpha.
	px0 := w.prepare(sx, 0, alice)
	w.step()
	mustOK(t, px0)
	if r := wantLeg(t, a, x, 0, crosschain.Refused); r.Reason != takenBy("T-1", alice, y) {
		t.Fatalf("refusal %q", r.Reason)
	}
	// Both abort: x for its refused leg, y for its refused leg; every escrow
	// comes back.
	dx, dy := w.decide(x, relayer), w.decide(y, relayer)
	w.step()
	mustOK(t, dx, dy)
	for _, z := range []crosschain.XTx{x, y} {
		if dec, _ := a.decision(z.ID()); dec.Commit {
			t.Fatalf("%s committed", z.ID().Short())
		}
	}
	fs := []*pending{w.finish(x, 1, relayer), w.finish(x, 2, relayer), w.finish(y, 1, relayer)}
	w.step()
	mustOK(t, fs...)
	checkConservation(t, w, 0)
	wantBalance(t, b, "USD", bob, funds)
	wantBalance(t, a, "SEC", alice, funds)
}

// TestRefAbortedAtDecide: a trade under a reference the coordinator saw
// committed aborts at its decide, before anything else, though its legs were
// prepared on a chain that never saw the reference and the coordinator has no
// leg of either trade.
func TestRefAbortedAtDecide(t *testing.T) {
	w := newWorld(t, "alpha", "beta", "gamma")
	a, b, g := w.chains["alpha"], w.chains["beta"], w.chains["gamma"]
	on := func(chain string, usd uint64) crosschain.XTx {
		return crosschain.XTx{Legs: []crosschain.Leg{
			{Chain: chain, Asset: "SEC", From: addr(alice), To: addr(bob), Amount: 10},
			{Chain: chain, Asset: "USD", From: addr(bob), To: addr(alice), Amount: usd},
		}, Coordinator: "alpha", Deadline: w.now + 60_000, Ref: "T-9"}
	}
	x, y := on("beta", 1000), on("gamma", 999)
	sx, sy := signed(t, x, alice, bob), signed(t, y, alice, bob)
	ps := []*pending{w.prepare(sx, 0, alice), w.prepare(sx, 1, bob), w.prepare(sy, 0, alice), w.prepare(sy, 1, bob)}
	w.step()
	mustOK(t, ps...)
	for i := range 2 {
		wantLeg(t, b, x, i, crosschain.Prepared)
		wantLeg(t, g, y, i, crosschain.Prepared)
	}
	dx := w.decide(x, relayer)
	w.step()
	mustOK(t, dx)
	if dec, _ := a.decision(x.ID()); !dec.Commit {
		t.Fatalf("x: %+v, want commit", dec)
	}
	if got := a.refHolder(bob, "T-9"); got != x.ID() {
		t.Fatalf("alpha: T-9 of bob held by %s, want x", got.Short())
	}
	wantTerms(t, a, x)
	dy := w.decide(y, relayer)
	w.step()
	mustOK(t, dy)
	if dec, _ := a.decision(y.ID()); dec.Commit || dec.Reason != takenBy("T-9", alice, x) {
		t.Fatalf("y: %+v, want abort: %s", dec, takenBy("T-9", alice, x))
	}
	wantTerms(t, a, y)
	fs := []*pending{w.finish(x, 0, relayer), w.finish(x, 1, relayer), w.finish(y, 0, relayer), w.finish(y, 1, relayer)}
	w.step()
	mustOK(t, fs...)
	wantBalance(t, b, "SEC", bob, funds+10)
	wantBalance(t, g, "SEC", alice, funds)
	wantBalance(t, g, "USD", bob, funds)
	checkConservation(t, w, 0)
}

// TestRefAbortedAtInlineDecide: a decide carrying the parties' signatures
// under a reference another trade holds on the coordinator aborts without
// preparing the coordinator's leg.
func TestRefAbortedAtInlineDecide(t *testing.T) {
	w := newWorld(t, "alpha", "beta")
	a := w.chains["alpha"]
	x := dvpTx(w, 10, 1000)
	x.Ref = "T-3"
	sx := signed(t, x, alice, bob)
	p1 := w.prepare(sx, 1, bob)
	w.step()
	mustOK(t, p1)
	d := decideWithSigs(w, sx)
	w.step()
	mustOK(t, d)
	wantLeg(t, a, x, 0, crosschain.Committed)

	y := x
	y.Legs = append([]crosschain.Leg(nil), x.Legs...)
	y.Legs[0].Amount = 11
	sy := signed(t, y, alice, bob)
	dy := decideWithSigs(w, sy)
	w.step()
	mustOK(t, dy)
	if dec, _ := a.decision(y.ID()); dec.Commit || dec.Reason != takenBy("T-3", alice, x) {
		t.Fatalf("y: %+v, want abort: %s", dec, takenBy("T-3", alice, x))
	}
	wantLeg(t, a, y, 0, crosschain.Aborted)
	wantBalance(t, a, "SEC", alice, funds-10)
	checkConservation(t, w, 1) // x's USD, until its finish on beta
}

// TestRefNeedsConsent: no one uses up a party's reference with an XTx the
// party never signed — not a party of it preparing a leg without the others'
// signatures, not anyone deciding it past its deadline. The party's own trade
// under that reference then settles.
func TestRefNeedsConsent(t *testing.T) {
	w := newWorld(t, "alpha", "beta")
	a, b := w.chains["alpha"], w.chains["beta"]
	fake := dvpTx(w, 1, 1)
	fake.Ref, fake.Deadline = "T-5", w.now+2000
	sf := signed(t, fake, bob) // alice never signed
	p := w.prepare(sf, 1, bob)
	w.step()
	mustOK(t, p)
	wantLeg(t, b, fake, 1, crosschain.Refused)
	for w.now <= fake.Deadline {
		w.step()
	}
	d := a.submit("decide without proofs", &crosschain.Decide{XTx: fake}, carol)
	w.step()
	mustOK(t, d)
	for _, c := range []*chain{a, b} {
		if got := c.refHolder(alice, "T-5"); !got.IsZero() {
			t.Fatalf("%s: alice's T-5 held by %s, which she never signed", c.id, got.Short())
		}
		wantTerms(t, c, fake)
	}

	x := dvpTx(w, 10, 1000)
	x.Ref = "T-5"
	sx := signed(t, x, alice, bob)
	p1 := w.prepare(sx, 1, bob)
	w.step()
	mustOK(t, p1)
	wantLeg(t, b, x, 1, crosschain.Prepared)
	dx := decideWithSigs(w, sx)
	w.step()
	mustOK(t, dx)
	if dec, _ := a.decision(x.ID()); !dec.Commit {
		t.Fatalf("alice's own T-5: %+v, want commit", dec)
	}
}

// TestPrepareNeedsClients: a chain escrows nothing for a trade whose decision
// it could never verify (no client of the coordinator, or a frozen one), and
// a coordinator nothing for a trade whose legs' records it could never
// verify, whether prepared apart or by its decide.
func TestPrepareNeedsClients(t *testing.T) {
	w := newWorld(t, "alpha", "beta")
	a, b := w.chains["alpha"], w.chains["beta"]
	x := dvpTx(w, 10, 1000)
	x.Coordinator = "gamma" // no chain keeps a client of it
	s := signed(t, x, alice, bob)
	p0 := w.prepare(s, 0, alice)
	w.step()
	mustOK(t, p0)
	if r := wantLeg(t, a, x, 0, crosschain.Refused); r.Reason != `no light client of chain "gamma" on alpha: the decision could never be proven here` {
		t.Fatalf("reason %q", r.Reason)
	}
	wantBalance(t, a, "SEC", alice, funds)

	// A leg on gamma, coordinated by alpha: alpha could never see it prepared.
	y := dvpTx(w, 10, 1000)
	y.Legs[1].Chain = "gamma"
	sy := signed(t, y, alice, bob)
	py := w.prepare(sy, 0, alice)
	w.step()
	mustOK(t, py)
	if r := wantLeg(t, a, y, 0, crosschain.Refused); !strings.Contains(r.Reason, `no light client of chain "gamma" on alpha`) {
		t.Fatalf("reason %q", r.Reason)
	}
	z := y
	z.Nonce = 7
	dz := a.submit("decide+prepare", &crosschain.Decide{XTx: z, Sigs: signed(t, z, alice, bob).Sigs}, relayer)
	w.step()
	mustOK(t, dz)
	if dec, _ := a.decision(z.ID()); dec.Commit || !strings.Contains(dec.Reason, `no light client of chain "gamma" on alpha`) {
		t.Fatalf("decide preparing its leg: %+v", dec)
	}
	wantBalance(t, a, "SEC", alice, funds)

	// Beta's client of alpha frozen by two certified headers at one height.
	hb, _ := forgedHeader(a, 1, a.vals[:3])
	ev := spv.Misbehaviour{Height: 2, HeaderA: a.headers[2], HeaderB: hb, CertA: a.certs[2], CertB: a.certify(&hb, a.vals[:3])}
	m := b.submit("misbehaviour", &crosschain.LCMisbehaviour{ChainID: "alpha", Evidence: ev}, relayer)
	w.step()
	mustOK(t, m)
	v := dvpTx(w, 10, 1000)
	sv := signed(t, v, alice, bob)
	pv := w.prepare(sv, 1, bob)
	w.step()
	mustOK(t, pv)
	if r := wantLeg(t, b, v, 1, crosschain.Refused); r.Reason != `the light client of chain "alpha" on beta is frozen: the decision could never be proven here` {
		t.Fatalf("reason %q", r.Reason)
	}
	wantBalance(t, b, "USD", bob, funds)
	checkConservation(t, w, 0)
}

// TestMaxLock: a deadline further ahead than the chain's max lock is refused,
// by a prepare and by a decide preparing its own leg; the admin, and only
// the admin, raises the max lock with xchain/set-params.
func TestMaxLock(t *testing.T) {
	w := newWorld(t, "alpha", "beta")
	a := w.chains["alpha"]
	x := dvpTx(w, 10, 1000)
	x.Deadline = w.now + 1000 + crosschain.DefaultMaxLock + 1 // the next block's time + max lock + 1 ms
	s := signed(t, x, alice, bob)
	p0 := w.prepare(s, 0, alice)
	z := x
	z.Nonce = 9
	d := decideWithSigs(w, signed(t, z, alice, bob))
	far := x
	far.Nonce, far.Deadline = 10, math.MaxInt64
	pf := w.prepare(signed(t, far, alice, bob), 0, alice)
	w.step()
	mustOK(t, p0, d, pf)
	if r := wantLeg(t, a, far, 0, crosschain.Refused); !strings.Contains(r.Reason, "ms after block time") {
		t.Fatalf("reason %q", r.Reason)
	}
	if r := wantLeg(t, a, x, 0, crosschain.Refused); !strings.Contains(r.Reason, "beyond this chain's max lock of 24h0m0s") {
		t.Fatalf("reason %q", r.Reason)
	}
	if dec, _ := a.decision(z.ID()); dec.Commit || !strings.Contains(dec.Reason, "max lock") {
		t.Fatalf("decide: %+v", dec)
	}
	wantBalance(t, a, "SEC", alice, funds)

	two := crosschain.Params{MaxLock: 2 * crosschain.DefaultMaxLock}
	ps := []*pending{
		a.submit("set-params by a relayer", &crosschain.SetParams{Params: two}, relayer),
		a.submit("set-params to zero", &crosschain.SetParams{Params: crosschain.Params{}}, admin),
	}
	w.step()
	mustFail(t, ps[0], transform.ErrUnauthorized)
	mustFail(t, ps[1], transform.ErrInvalid)
	set := a.submit("set-params", &crosschain.SetParams{Params: two}, admin)
	w.step()
	mustOK(t, set)
	var got crosschain.Params
	if !a.get(crosschain.ParamsKey, &got) || got != two {
		t.Fatalf("params %+v", got)
	}
	y := x
	y.Nonce = 2
	py := w.prepare(signed(t, y, alice, bob), 0, alice)
	w.step()
	mustOK(t, py)
	wantLeg(t, a, y, 0, crosschain.Prepared)
	wantBalance(t, a, "SEC", alice, funds-10)
}
