package crosschain_test

import (
	"strings"
	"testing"

	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/crosschain"
)

// decideWithSigs is the relay's decide that also prepares the coordinator's
// own legs: the parties' signatures ride along.
func decideWithSigs(w *world, s *crosschain.Signed) *pending {
	d := w.decideTx(s.XTx, relayer)
	d.Sigs = s.Sigs
	return w.chains[s.XTx.Coordinator].submit("decide+prepare", d, relayer)
}

// TestDecidePreparesOwnLeg: only the buyer prepares (on beta); the decide on
// alpha, carrying the parties' signatures, prepares and commits alice's leg in
// the same transaction. Three chain transactions settle the DvP, every step
// replayed changes nothing, and a late prepare of the coordinator's leg fails.
func TestDecidePreparesOwnLeg(t *testing.T) {
	w := newWorld(t, "alpha", "beta")
	a, b := w.chains["alpha"], w.chains["beta"]
	x := dvpTx(w, 10, 1000)
	s := signed(t, x, alice, bob)

	p1 := w.prepare(s, 1, bob)
	w.step()
	mustOK(t, p1)
	wantBalance(t, a, "SEC", alice, funds)

	d := decideWithSigs(w, s)
	w.step()
	mustOK(t, d)
	if dec, ok := a.decision(x.ID()); !ok || !dec.Commit {
		t.Fatalf("decision %+v (present %t), want commit", dec, ok)
	}
	wantLeg(t, a, x, 0, crosschain.Committed)
	wantBalance(t, a, "SEC", alice, funds-10)
	wantBalance(t, a, "SEC", bob, funds+10)
	checkConservation(t, w, 1) // bob's USD still in escrow on beta

	f1 := w.finish(x, 1, relayer)
	w.step()
	mustOK(t, f1)
	wantBalance(t, b, "USD", alice, funds+1000)
	checkConservation(t, w, 0)

	sa := a.snapshot()
	r := []*pending{w.prepare(s, 0, alice), decideWithSigs(w, s), w.decide(x, relayer)}
	w.step()
	mustFail(t, r[0], crosschain.ErrAlreadyPrepared)
	mustFail(t, r[1], crosschain.ErrAlreadyDecided)
	mustFail(t, r[2], crosschain.ErrAlreadyDecided)
	if err := sameState(sa, a.snapshot(), crosschain.LCPrefix, crosschain.LCRootPrefix); err != nil {
		t.Fatalf("alpha: %v", err)
	}
}

// TestDecideRefusesOwnLeg: alice cannot deliver; the decide records the abort
// with the refusal's reason, nothing moves on alpha, and bob's escrow on beta
// is refunded.
func TestDecideRefusesOwnLeg(t *testing.T) {
	w := newWorld(t, "alpha", "beta")
	a, b := w.chains["alpha"], w.chains["beta"]
	x := dvpTx(w, funds+1, 1000)
	s := signed(t, x, alice, bob)
	p1 := w.prepare(s, 1, bob)
	w.step()
	mustOK(t, p1)
	d := decideWithSigs(w, s)
	w.step()
	mustOK(t, d)
	dec, ok := a.decision(x.ID())
	if !ok || dec.Commit || !strings.Contains(dec.Reason, "insufficient funds") || !strings.Contains(dec.Reason, "leg 0") {
		t.Fatalf("decision %+v (present %t), want abort for leg 0's funds", dec, ok)
	}
	wantLeg(t, a, x, 0, crosschain.Aborted)
	wantBalance(t, a, "SEC", alice, funds)
	wantBalance(t, a, "SEC", bob, funds)
	f1 := w.finish(x, 1, relayer)
	w.step()
	mustOK(t, f1)
	wantLeg(t, b, x, 1, crosschain.Aborted)
	wantBalance(t, b, "USD", bob, funds)
	checkConservation(t, w, 0)
}

// TestDecideOwnLegNeedsConsent: a decide whose signatures do not show every
// party's consent (one missing, one forged) fails and changes nothing; so does
// one whose payer's two legs on the coordinator fit her balance each but not
// together, which aborts instead of overdrawing.
func TestDecideOwnLegNeedsConsent(t *testing.T) {
	w := newWorld(t, "alpha", "beta")
	a := w.chains["alpha"]
	x := dvpTx(w, 10, 1000)
	s := signed(t, x, alice, bob)
	p1 := w.prepare(s, 1, bob)
	w.step()
	mustOK(t, p1)
	sa := a.snapshot()

	missing := signed(t, x, bob)
	forged := signed(t, x, alice, bob)
	forged.Sigs[0].Sig = append([]byte(nil), forged.Sigs[0].Sig...)
	forged.Sigs[0].Sig[3] ^= 1
	r := []*pending{decideWithSigs(w, missing), decideWithSigs(w, forged)}
	w.step()
	for _, p := range r {
		mustFail(t, p, transform.ErrUnauthorized)
	}
	if err := sameState(sa, a.snapshot(), crosschain.LCPrefix, crosschain.LCRootPrefix); err != nil {
		t.Fatalf("alpha: %v", err)
	}

	// Two legs of alice on alpha: each fits her balance, both do not.
	y := crosschain.XTx{Legs: []crosschain.Leg{
		{Chain: "alpha", Asset: "SEC", From: addr(alice), To: addr(bob), Amount: funds/2 + 1},
		{Chain: "alpha", Asset: "SEC", From: addr(alice), To: addr(bob), Amount: funds/2 + 1},
		{Chain: "beta", Asset: "USD", From: addr(bob), To: addr(alice), Amount: 5},
	}, Coordinator: "alpha", Deadline: w.now + 60_000, Nonce: 2}
	sy := signed(t, y, alice, bob)
	py := w.prepare(sy, 2, bob)
	w.step()
	mustOK(t, py)
	d := decideWithSigs(w, sy)
	w.step()
	mustOK(t, d)
	if dec, _ := a.decision(y.ID()); dec.Commit || !strings.Contains(dec.Reason, "insufficient funds") {
		t.Fatalf("decision %+v, want abort for alice's funds", dec)
	}
	wantBalance(t, a, "SEC", alice, funds)
}
