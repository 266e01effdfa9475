package crosschain_test

import (
	"strings"
	"testing"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/header"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/spv"
)

// dvpTx is alice delivering sec SEC on alpha against bob paying usd USD on beta,
// coordinated by alpha.
func dvpTx(w *world, sec, usd uint64) crosschain.XTx {
	return crosschain.XTx{
		Legs: []crosschain.Leg{
			{Chain: "alpha", Asset: "SEC", From: addr(alice), To: addr(bob), Amount: sec},
			{Chain: "beta", Asset: "USD", From: addr(bob), To: addr(alice), Amount: usd},
		},
		Coordinator: "alpha", Deadline: w.now + 60_000, Nonce: 1, Memo: "dvp",
	}
}

func checkConservation(t *testing.T, w *world, wantEscrows int) {
	t.Helper()
	n := 0
	for _, id := range w.order {
		es, err := w.chains[id].conservation()
		if err != nil {
			t.Fatal(err)
		}
		n += len(es)
	}
	if n != wantEscrows {
		t.Fatalf("%d escrows, want %d", n, wantEscrows)
	}
}

func wantLeg(t *testing.T, c *chain, x crosschain.XTx, i int, st crosschain.Status) crosschain.LegRecord {
	t.Helper()
	r, ok := c.leg(x.ID(), i)
	if !ok || r.Status != st {
		t.Fatalf("%s leg %d: %+v (present %t), want %s", c.id, i, r, ok, st)
	}
	return r
}

func wantBalance(t *testing.T, c *chain, a string, k crypto.PrivateKey, want uint64) {
	t.Helper()
	if got := c.balance(a, k); got != want {
		t.Fatalf("%s: %s balance of %s = %d, want %d", c.id, a, addr(k), got, want)
	}
}

func TestDvPCommit(t *testing.T) {
	w := newWorld(t, "alpha", "beta")
	a, b := w.chains["alpha"], w.chains["beta"]
	x := dvpTx(w, 10, 1000)
	s := signed(t, x, alice, bob)

	p0, p1 := w.prepare(s, 0, relayer), w.prepare(s, 1, bob)
	w.step()
	mustOK(t, p0, p1)
	wantLeg(t, a, x, 0, crosschain.Prepared)
	wantLeg(t, b, x, 1, crosschain.Prepared)
	wantBalance(t, a, "SEC", alice, funds-10)
	wantBalance(t, b, "USD", bob, funds-1000)
	checkConservation(t, w, 2)

	d := w.decide(x, relayer)
	w.step()
	mustOK(t, d)
	if dec, ok := a.decision(x.ID()); !ok || !dec.Commit {
		t.Fatalf("decision %+v (present %t), want commit", dec, ok)
	}
	// The decide finished the coordinator's own leg: bob holds the SEC already.
	wantLeg(t, a, x, 0, crosschain.Committed)
	wantBalance(t, a, "SEC", bob, funds+10)

	f0 := w.finishTx(x, 0, relayer)
	f1 := w.finishTx(x, 1, relayer)
	q0, q1 := a.submit("finish", f0, relayer), b.submit("finish", f1, relayer)
	w.step()
	mustFail(t, q0, crosschain.ErrAlreadyFinished)
	mustOK(t, q1)
	wantLeg(t, a, x, 0, crosschain.Committed)
	wantLeg(t, b, x, 1, crosschain.Committed)
	wantBalance(t, a, "SEC", alice, funds-10)
	wantBalance(t, a, "SEC", bob, funds+10)
	wantBalance(t, b, "USD", bob, funds-1000)
	wantBalance(t, b, "USD", alice, funds+1000)
	checkConservation(t, w, 0)

	// Every step replayed, with the old proofs and with fresh ones: nothing changes.
	sa, sb := a.snapshot(), b.snapshot()
	oldUpdate := &crosschain.LCUpdate{ChainID: "alpha", Header: a.headers[3], Cert: a.certs[3], NextSet: a.nextSets[3]}
	r := []*pending{
		w.prepare(s, 0, relayer), w.prepare(s, 1, relayer),
		a.submit("decide again", w.decideTx(x, relayer), relayer),
		a.submit("finish replay", f0, relayer), b.submit("finish replay", f1, relayer),
		b.submit("finish fresh", w.finishTx(x, 1, relayer), relayer),
		b.submit("stale update", oldUpdate, relayer),
	}
	w.step()
	mustFail(t, r[0], crosschain.ErrAlreadyPrepared)
	mustFail(t, r[1], crosschain.ErrAlreadyPrepared)
	mustFail(t, r[2], crosschain.ErrAlreadyDecided)
	mustFail(t, r[3], crosschain.ErrAlreadyFinished)
	mustFail(t, r[4], crosschain.ErrAlreadyFinished)
	mustFail(t, r[5], crosschain.ErrAlreadyFinished)
	mustFail(t, r[6], crosschain.ErrStaleUpdate)
	// Client updates the relay sent along may move the clients; nothing else moves.
	if err := sameState(sa, a.snapshot(), crosschain.LCPrefix, crosschain.LCRootPrefix); err != nil {
		t.Fatalf("alpha: %v", err)
	}
	if err := sameState(sb, b.snapshot(), crosschain.LCPrefix, crosschain.LCRootPrefix); err != nil {
		t.Fatalf("beta: %v", err)
	}
}

func TestDvPAbortInsufficientFunds(t *testing.T) {
	w := newWorld(t, "alpha", "beta")
	a, b := w.chains["alpha"], w.chains["beta"]
	x := dvpTx(w, 10, funds+1) // bob cannot pay
	s := signed(t, x, alice, bob)
	p0, p1 := w.prepare(s, 0, alice), w.prepare(s, 1, relayer)
	w.step()
	mustOK(t, p0, p1) // a refusal is a successful transaction that records it
	wantLeg(t, a, x, 0, crosschain.Prepared)
	ref := wantLeg(t, b, x, 1, crosschain.Refused)
	if !strings.Contains(ref.Reason, "insufficient funds") {
		t.Fatalf("refusal reason %q", ref.Reason)
	}
	wantBalance(t, b, "USD", bob, funds)
	checkConservation(t, w, 1)

	d := w.decide(x, relayer)
	w.step()
	mustOK(t, d)
	dec, _ := a.decision(x.ID())
	if dec.Commit || !strings.Contains(dec.Reason, "leg 1 on beta refused") {
		t.Fatalf("decision %+v, want abort for leg 1", dec)
	}
	wantLeg(t, a, x, 0, crosschain.Aborted) // by the decide itself
	wantBalance(t, a, "SEC", alice, funds)
	q0, q1 := w.finish(x, 0, relayer), w.finish(x, 1, relayer)
	w.step()
	mustFail(t, q0, crosschain.ErrAlreadyFinished)
	mustOK(t, q1)
	wantLeg(t, a, x, 0, crosschain.Aborted)
	if r := wantLeg(t, b, x, 1, crosschain.Aborted); !strings.Contains(r.Reason, "insufficient funds") {
		t.Fatalf("aborted leg keeps its refusal reason, got %q", r.Reason)
	}
	wantBalance(t, a, "SEC", alice, funds) // refunded
	wantBalance(t, a, "SEC", bob, funds)
	wantBalance(t, b, "USD", alice, funds)
	checkConservation(t, w, 0)
}

func TestAbortAtDeadlineWhenChainHalted(t *testing.T) {
	w := newWorld(t, "alpha", "beta")
	a, b := w.chains["alpha"], w.chains["beta"]
	x := dvpTx(w, 10, 1000)
	s := signed(t, x, alice, bob)
	b.halted = true
	p0 := w.prepare(s, 0, relayer)
	p1 := w.prepare(s, 1, relayer) // waits in beta's pool
	w.step()
	mustOK(t, p0)
	d := w.decide(x, relayer)
	w.step()
	mustFail(t, d, crosschain.ErrNotReady)

	for w.now <= x.Deadline {
		w.step()
	}
	d = w.decide(x, relayer)
	w.step()
	mustOK(t, d)
	dec, _ := a.decision(x.ID())
	if dec.Commit || !strings.Contains(dec.Reason, "deadline") {
		t.Fatalf("decision %+v, want abort at deadline", dec)
	}
	wantLeg(t, a, x, 0, crosschain.Aborted) // the decide refunded the local leg
	wantBalance(t, a, "SEC", alice, funds)
	q0 := w.finish(x, 0, relayer)
	w.step()
	mustFail(t, q0, crosschain.ErrAlreadyFinished)

	// beta comes back: the stale prepare in its pool is refused (its clock is past
	// the deadline), the finish records the leg aborted, a later prepare changes nothing.
	b.halted = false
	w.step()
	mustOK(t, p1)
	wantLeg(t, b, x, 1, crosschain.Refused)
	q1 := w.finish(x, 1, relayer)
	w.step()
	mustOK(t, q1)
	wantLeg(t, b, x, 1, crosschain.Aborted)
	late := w.prepare(s, 1, bob)
	w.step()
	mustFail(t, late, crosschain.ErrAlreadyPrepared)
	wantBalance(t, b, "USD", bob, funds)
	checkConservation(t, w, 0)
}

func TestFinishBeforePrepareBlocksLatePrepare(t *testing.T) {
	w := newWorld(t, "alpha", "beta")
	a, b := w.chains["alpha"], w.chains["beta"]
	x := dvpTx(w, 10, 1000)
	x.Deadline = w.now + 3000
	s := signed(t, x, alice, bob)
	for w.now <= x.Deadline {
		w.step()
	}
	d := w.decide(x, relayer)
	w.step()
	mustOK(t, d)
	q1 := w.finish(x, 1, relayer) // no record yet on beta
	w.step()
	mustOK(t, q1)
	wantLeg(t, b, x, 1, crosschain.Aborted)
	late := w.prepare(s, 1, bob)
	w.step()
	mustFail(t, late, crosschain.ErrAlreadyPrepared)
	wantBalance(t, b, "USD", bob, funds)
	// The decide recorded the coordinator's unprepared leg aborted: it can no
	// longer be prepared either.
	wantLeg(t, a, x, 0, crosschain.Aborted)
	late0 := w.prepare(s, 0, alice)
	w.step()
	mustFail(t, late0, crosschain.ErrAlreadyPrepared)
	wantBalance(t, a, "SEC", alice, funds)
}

func TestPvPThreeLegsThreeChains(t *testing.T) {
	w := newWorld(t, "alpha", "beta", "gamma")
	x := crosschain.XTx{
		Legs: []crosschain.Leg{
			{Chain: "alpha", Asset: "USD", From: addr(alice), To: addr(bob), Amount: 100},
			{Chain: "beta", Asset: "SEC", From: addr(bob), To: addr(carol), Amount: 5},
			{Chain: "gamma", Asset: "USD", From: addr(carol), To: addr(alice), Amount: 7},
		},
		Coordinator: "gamma", Deadline: w.now + 60_000,
	}
	s := signed(t, x, carol, alice, bob)
	ps := []*pending{w.prepare(s, 0, relayer), w.prepare(s, 1, relayer), w.prepare(s, 2, relayer)}
	w.step()
	mustOK(t, ps...)
	d := w.decide(x, relayer)
	w.step()
	mustOK(t, d)
	if dec, _ := w.chains["gamma"].decision(x.ID()); !dec.Commit {
		t.Fatalf("decision %+v", dec)
	}
	wantLeg(t, w.chains["gamma"], x, 2, crosschain.Committed) // the coordinator's own leg, by the decide
	fs := []*pending{w.finish(x, 0, relayer), w.finish(x, 1, relayer), w.finish(x, 2, relayer)}
	w.step()
	mustOK(t, fs[0], fs[1])
	mustFail(t, fs[2], crosschain.ErrAlreadyFinished)
	wantBalance(t, w.chains["alpha"], "USD", bob, funds+100)
	wantBalance(t, w.chains["beta"], "SEC", carol, funds+5)
	wantBalance(t, w.chains["gamma"], "USD", alice, funds+7)
	wantBalance(t, w.chains["gamma"], "USD", carol, funds-7)
	for i, l := range x.Legs {
		wantLeg(t, w.chains[l.Chain], x, i, crosschain.Committed)
	}
	checkConservation(t, w, 0)
}

func TestRefusals(t *testing.T) {
	w := newWorld(t, "alpha", "beta")
	a := w.chains["alpha"]
	mk := func(n uint64, from crypto.PrivateKey, as string) crosschain.XTx {
		return crosschain.XTx{Legs: []crosschain.Leg{
			{Chain: "alpha", Asset: as, From: addr(from), To: addr(carol), Amount: 1},
			{Chain: "beta", Asset: "USD", From: addr(carol), To: addr(from), Amount: 1},
		}, Coordinator: "alpha", Deadline: w.now + 60_000, Nonce: n}
	}
	noRole := mk(1, dave, "SEC")
	unknown := mk(2, alice, "GOLD")
	unsigned := mk(3, alice, "SEC")
	ps := []*pending{
		w.prepare(signed(t, noRole, dave, carol), 0, relayer),
		w.prepare(signed(t, unknown, alice, carol), 0, relayer),
		// a relay cannot abort a trade by stripping a signature: its prepare fails
		w.prepare(signed(t, unsigned, alice), 0, relayer),
		// a party can: it is recorded as a refusal
		w.prepare(signed(t, unsigned, alice), 0, alice),
	}
	w.step()
	mustOK(t, ps[0], ps[1], ps[3])
	mustFail(t, ps[2], crosschain.ErrMissingSignature)
	for _, c := range []struct {
		x    crosschain.XTx
		want string
	}{{noRole, "holds none of the roles"}, {unknown, "unknown asset"}, {unsigned, "did not sign"}} {
		r := wantLeg(t, a, c.x, 0, crosschain.Refused)
		if !strings.Contains(r.Reason, c.want) {
			t.Fatalf("reason %q, want %q", r.Reason, c.want)
		}
	}
	wantBalance(t, a, "SEC", dave, funds)
	// Structural errors fail the transaction and record nothing.
	x := dvpTx(w, 1, 1)
	s := signed(t, x, alice, bob)
	wrong := a.submit("prepare leg of beta on alpha", &crosschain.Prepare{Tx: *s, Leg: 1}, relayer)
	oob := a.submit("prepare leg 7", &crosschain.Prepare{Tx: *s, Leg: 7}, relayer)
	notCoord := w.chains["beta"].submit("decide on beta", &crosschain.Decide{XTx: x}, relayer)
	w.step()
	mustFail(t, wrong, crosschain.ErrWrongChain)
	mustFail(t, oob, crosschain.ErrMalformed)
	mustFail(t, notCoord, crosschain.ErrWrongChain)
	// Only relayers update clients.
	u := updates(a, w.chains["beta"])[0]
	byAlice := a.submit("update by a trader", u, alice)
	w.step()
	mustFail(t, byAlice, transform.ErrUnauthorized)
}

// forgedHeader returns the header after src's header at base with the state root of the attacker's
// choosing and a certificate signed by keys.
func forgedHeader(src *chain, base uint64, keys []crypto.PrivateKey) (header.Header, *crosschain.LCUpdate) {
	h := src.headers[base]
	f := header.Header{ChainID: src.id, Height: h.Height + 1, Time: h.Time + 1, PrevHash: h.Hash(),
		ValidatorsHash: h.NextValidatorsHash, NextValidatorsHash: h.NextValidatorsHash}
	f.StateRoot[0] = 0xee
	return f, &crosschain.LCUpdate{ChainID: src.id, Header: f, Cert: src.certify(&f, keys)}
}

func TestForgedProofsChangeNothing(t *testing.T) {
	w := newWorld(t, "alpha", "beta")
	a, b := w.chains["alpha"], w.chains["beta"]
	x := dvpTx(w, 10, funds+1)
	s := signed(t, x, alice, bob)
	p0, p1 := w.prepare(s, 0, relayer), w.prepare(s, 1, relayer)
	w.step()
	mustOK(t, p0, p1)
	wantLeg(t, b, x, 1, crosschain.Refused)

	id := x.ID()
	honest := b.prove(crosschain.LegKey(id, 1))
	w.relay(a, b)
	w.step()
	if a.clientHeight("beta") != honest.Height {
		t.Fatalf("client of beta at %d, want %d", a.clientHeight("beta"), honest.Height)
	}
	before := a.snapshot()

	forge := func(mod func(p *crosschain.Proof)) *crosschain.Decide {
		p := honest
		p.Value = append([]byte(nil), honest.Value...)
		sp := *honest.Proof
		sp.Siblings = append(sp.Siblings[:0:0], honest.Proof.Siblings...)
		p.Proof = &sp
		mod(&p)
		return &crosschain.Decide{XTx: x, Proofs: []crosschain.LegProof{{Leg: 1, Proof: p}}}
	}
	prepared := encoding.MustMarshal(crosschain.LegRecord{Status: crosschain.Prepared, Height: honest.Height})
	fakeHdr, fakeUpdate := forgedHeader(b, a.clientHeight("beta"), []crypto.PrivateKey{mallory, alice, bob})
	ps := []*pending{
		a.submit("forged value", forge(func(p *crosschain.Proof) { p.Value = prepared }), mallory),
		a.submit("tampered sibling", forge(func(p *crosschain.Proof) { p.Proof.Siblings[0][0] ^= 1 }), mallory),
		a.submit("other height", forge(func(p *crosschain.Proof) { p.Height-- }), mallory),
		a.submit("unknown height", forge(func(p *crosschain.Proof) { p.Height += 50 }), mallory),
		a.submit("no proof", forge(func(p *crosschain.Proof) { p.Proof = nil }), mallory),
		a.submit("header signed by strangers", fakeUpdate, mallory),
	}
	// The genuine next header of beta with a changed state root under its real cert.
	w.chains["beta"].produce(w.now)
	tampered := updates(a, b)
	bad := *tampered[0]
	bad.Header.StateRoot = fakeHdr.StateRoot
	ps = append(ps, a.submit("tampered header, real cert", &bad, mallory))
	short := *tampered[0]
	short.Cert.Votes = short.Cert.Votes[:2]
	ps = append(ps, a.submit("cert without quorum", &short, mallory))
	sig := *tampered[0]
	sig.Cert.Votes = append(sig.Cert.Votes[:0:0], sig.Cert.Votes...)
	sig.Cert.Votes[0].Signature = append([]byte(nil), sig.Cert.Votes[0].Signature...)
	sig.Cert.Votes[0].Signature[3] ^= 1
	ps = append(ps, a.submit("forged vote", &sig, mallory))
	a.produce(w.now + 1000)
	mustFail(t, ps[0], crosschain.ErrBadProof)
	mustFail(t, ps[1], crosschain.ErrBadProof)
	mustFail(t, ps[2], crosschain.ErrBadProof)
	mustFail(t, ps[3], spv.ErrUnknownHeight)
	mustFail(t, ps[4], crosschain.ErrMalformed)
	mustFail(t, ps[5], spv.ErrBadCertificate)
	mustFail(t, ps[6], spv.ErrBadCertificate)
	mustFail(t, ps[7], spv.ErrBadCertificate)
	mustFail(t, ps[8], spv.ErrBadCertificate)
	if err := sameState(before, a.snapshot()); err != nil {
		t.Fatalf("a forged proof changed alpha: %v", err)
	}

	// The honest proof decides abort; a forged commit decision cannot finish beta.
	d := a.submit("decide", &crosschain.Decide{XTx: x, Proofs: []crosschain.LegProof{{Leg: 1, Proof: honest}}}, relayer)
	w.step()
	mustOK(t, d)
	f := w.finishTx(x, 1, relayer) // the decision proof, from alpha
	w.step()                       // beta's client of alpha catches up
	bBefore := b.snapshot()
	commit := *f.Decision
	dec, _ := a.decision(id)
	dec.Commit = true
	commit.Value = encoding.MustMarshal(dec)
	fin := b.submit("forged commit", &crosschain.Finish{XTx: x, Leg: 1, Decision: &commit}, mallory)
	w.step()
	mustFail(t, fin, crosschain.ErrBadProof)
	if err := sameState(bBefore, b.snapshot()); err != nil {
		t.Fatalf("a forged decision changed beta: %v", err)
	}
}

func TestLegProofFromWrongChain(t *testing.T) {
	w := &world{t: t, chains: map[string]*chain{}, order: []string{"alpha", "beta", "gamma"}, now: T0}
	w.chains["alpha"] = newChain(t, "alpha", nil)
	w.chains["beta"] = newChain(t, "beta", nil)
	w.chains["gamma"] = newChain(t, "gamma", func(r *transform.Registry) { r.MustRegister("test/put", &put{}) })
	w.start()
	a, b, g := w.chains["alpha"], w.chains["beta"], w.chains["gamma"]
	x := dvpTx(w, 10, 1000)
	s := signed(t, x, alice, bob)
	id := x.ID()
	p0 := w.prepare(s, 0, relayer)
	// gamma, whose application lets anyone write any key, holds "leg 1 prepared".
	g.submit("put", &put{Key: crosschain.LegKey(id, 1), Rec: crosschain.LegRecord{Status: crosschain.Prepared}}, mallory)
	w.step()
	mustOK(t, p0)
	w.relay(a, b)
	w.relay(a, g)
	w.step()
	p := g.prove(crosschain.LegKey(id, 1))
	if p.Height != b.height() || a.clientHeight("beta") != p.Height-1 {
		t.Fatalf("heights: gamma proof %d, beta %d, client %d", p.Height, b.height(), a.clientHeight("beta"))
	}
	w.relay(a, b)
	w.relay(a, g)
	w.step() // alpha's clients now at the proof's height
	before := a.snapshot()
	d := a.submit("gamma's proof as beta's", &crosschain.Decide{XTx: x, Proofs: []crosschain.LegProof{{Leg: 1, Proof: p}}}, mallory)
	w.step()
	mustFail(t, d, crosschain.ErrBadProof)
	if err := sameState(before, a.snapshot()); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.decision(id); ok {
		t.Fatal("decided on a proof from the wrong chain")
	}
}

// put writes a leg record at any key: an unsafe application transform.
type put struct {
	Key string               `cbor:"1,keyasint"`
	Rec crosschain.LegRecord `cbor:"2,keyasint"`
}

func (p *put) Keys(*transform.Context) (r, w []string)              { return nil, []string{p.Key} }
func (p *put) Authorizations(*transform.Context) []crypto.Address   { return nil }
func (p *put) Verify(*transform.Context, transform.State) error     { return nil }
func (p *put) Apply(_ *transform.Context, st transform.State) error { return st.Set(p.Key, p.Rec) }

// TestFinishedLegs: a decide finishes the coordinator's legs, a finish its own,
// a prepare none.
func TestFinishedLegs(t *testing.T) {
	w := newWorld(t, "alpha", "beta", "gamma")
	x := crosschain.XTx{Legs: []crosschain.Leg{
		{Chain: "alpha", Asset: "SEC", From: addr(alice), To: addr(bob), Amount: 1},
		{Chain: "beta", Asset: "USD", From: addr(bob), To: addr(alice), Amount: 1},
		{Chain: "alpha", Asset: "SEC", From: addr(alice), To: addr(carol), Amount: 1},
	}, Coordinator: "alpha", Deadline: w.now + 60_000, Nonce: 9}
	for _, tc := range []struct {
		tr   transform.Transform
		legs int
	}{
		{&crosschain.Decide{XTx: x}, 2},
		{&crosschain.Finish{XTx: x, Leg: 1}, 1},
		{&crosschain.Prepare{Tx: crosschain.Signed{XTx: x}}, 0},
	} {
		n := 0
		for _, f := range crosschain.FinishedLegs(tc.tr, nil) {
			if f.ID != x.ID() {
				t.Errorf("%T: finished %s, want %s", tc.tr, f.ID.Short(), x.ID().Short())
			}
			n += f.Legs
		}
		if n != tc.legs {
			t.Errorf("%T: %d legs; want %d", tc.tr, n, tc.legs)
		}
	}
	// A batch: its steps' legs, less those its receipt says it skipped.
	b := &crosschain.Batch{Steps: []crosschain.Step{
		crosschain.StepOf(&crosschain.Decide{XTx: x}),
		crosschain.StepOf(&crosschain.Finish{XTx: x, Leg: 1}),
		crosschain.StepOf(&crosschain.Finish{XTx: x, Leg: 1}),
	}}
	for _, tc := range []struct {
		skipped []transform.Skip
		legs    int
	}{
		{nil, 4},
		{[]transform.Skip{{Part: 0}}, 2},
		{[]transform.Skip{{Part: 1}, {Part: 2}}, 2},
	} {
		n := 0
		for _, f := range crosschain.FinishedLegs(b, tc.skipped) {
			n += f.Legs
		}
		if n != tc.legs {
			t.Errorf("batch skipping %v: %d legs; want %d", tc.skipped, n, tc.legs)
		}
	}
}
