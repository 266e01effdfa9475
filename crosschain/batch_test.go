package crosschain_test

import (
	"strings"
	"testing"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/crosschain"
)

// batchOf wraps steps in an xchain/batch.
func batchOf(trs ...transform.Transform) *crosschain.Batch {
	b := &crosschain.Batch{}
	for _, tr := range trs {
		b.Steps = append(b.Steps, crosschain.StepOf(tr))
	}
	return b
}

// wantSkipped checks a batch's receipt: exactly the parts listed were skipped,
// each for a reason containing the text given.
func wantSkipped(t *testing.T, p *pending, want map[uint32]string) {
	t.Helper()
	mustOK(t, p)
	if len(p.skipped) != len(want) {
		t.Fatalf("%s: skipped %+v, want parts %v", p.label, p.skipped, want)
	}
	for _, s := range p.skipped {
		if w, ok := want[s.Part]; !ok || !strings.Contains(s.Error, w) {
			t.Fatalf("%s: skipped %+v, want parts %v", p.label, p.skipped, want)
		}
	}
}

// TestBatchSkipsWhatIsDone: two DvPs settled by batches. A step another
// transaction already did is skipped and named in the receipt, the others
// apply; a step sees what the steps before it in the batch wrote; a batch of
// which nothing applies fails with the first step's error and changes nothing.
func TestBatchSkipsWhatIsDone(t *testing.T) {
	w := newWorld(t, "alpha", "beta")
	a, b := w.chains["alpha"], w.chains["beta"]
	x1, x2 := dvpTx(w, 10, 1000), dvpTx(w, 20, 2000)
	x2.Nonce = 2
	s1, s2 := signed(t, x1, alice, bob), signed(t, x2, alice, bob)

	// Beta: both buyer legs prepared in one batch. Alpha: x1's seller leg
	// prepared on its own, and x2's in a batch whose next step decides x2 —
	// the decide sees the prepare the batch made just before it.
	pb := b.submit("prepare batch", batchOf(&crosschain.Prepare{Tx: *s1, Leg: 1}, &crosschain.Prepare{Tx: *s2, Leg: 1}), relayer)
	p1 := w.prepare(s1, 0, relayer)
	w.step()
	wantSkipped(t, pb, nil)
	mustOK(t, p1)
	wantLeg(t, b, x1, 1, crosschain.Prepared)
	wantLeg(t, b, x2, 1, crosschain.Prepared)

	d1 := w.decide(x1, relayer)
	w.step()
	mustOK(t, d1)
	d2 := w.decideTx(x2, relayer)
	pd := a.submit("prepare+decide batch", batchOf(&crosschain.Prepare{Tx: *s2, Leg: 0}, d2, w.decideTx(x1, relayer)), relayer)
	w.step()
	wantSkipped(t, pd, map[uint32]string{2: crosschain.ErrAlreadyDecided.Error()})
	for _, x := range []crosschain.XTx{x1, x2} {
		if dec, ok := a.decision(x.ID()); !ok || !dec.Commit {
			t.Fatalf("decision of %s: %+v (present %t), want commit", x.ID().Short(), dec, ok)
		}
		wantLeg(t, a, x, 0, crosschain.Committed)
	}

	f1, f2 := w.finishTx(x1, 1, relayer), w.finishTx(x2, 1, relayer)
	pf := b.submit("finish batch", batchOf(f1, f2, f2), relayer)
	w.step()
	wantSkipped(t, pf, map[uint32]string{2: crosschain.ErrAlreadyFinished.Error()})
	wantBalance(t, a, "SEC", bob, funds+30)
	wantBalance(t, b, "USD", alice, funds+3000)
	checkConservation(t, w, 0)

	// Replays only: the batch fails with the first step's error and nothing moves.
	sa, sb := a.snapshot(), b.snapshot()
	ra := a.submit("decides again", batchOf(w.decideTx(x2, relayer), w.decideTx(x1, relayer)), relayer)
	rb := b.submit("finishes again", batchOf(f2, f1), relayer)
	w.step()
	mustFail(t, ra, crosschain.ErrAlreadyDecided)
	mustFail(t, rb, crosschain.ErrAlreadyFinished)
	if !strings.Contains(ra.errStr, "step 0") || len(ra.skipped) != 0 {
		t.Fatalf("failed batch: %q, skipped %v; want step 0's error and no receipt parts", ra.errStr, ra.skipped)
	}
	if err := sameState(sa, a.snapshot(), crosschain.LCPrefix, crosschain.LCRootPrefix); err != nil {
		t.Fatalf("alpha: %v", err)
	}
	if err := sameState(sb, b.snapshot(), crosschain.LCPrefix, crosschain.LCRootPrefix); err != nil {
		t.Fatalf("beta: %v", err)
	}
}

// TestBatchForgedStepChangesNothing: a forged proof inside a batch is skipped
// like any step that fails verification; the honest step beside it applies,
// and the forged one moves nothing.
func TestBatchForgedStepChangesNothing(t *testing.T) {
	w := newWorld(t, "alpha", "beta")
	a, b := w.chains["alpha"], w.chains["beta"]
	x1 := dvpTx(w, 10, funds+1) // bob cannot pay: beta refuses leg 1
	x2 := dvpTx(w, 20, 2000)
	x2.Nonce = 2
	s1, s2 := signed(t, x1, alice, bob), signed(t, x2, alice, bob)
	ps := []*pending{w.prepare(s1, 0, relayer), w.prepare(s1, 1, relayer), w.prepare(s2, 0, relayer), w.prepare(s2, 1, relayer)}
	w.step()
	mustOK(t, ps...)
	wantLeg(t, b, x1, 1, crosschain.Refused)

	forged := w.decideTx(x1, mallory)
	forged.Proofs[0].Proof.Value = encoding.MustMarshal(crosschain.LegRecord{Status: crosschain.Prepared, Height: forged.Proofs[0].Proof.Height})
	honest := w.decideTx(x2, mallory)
	w.step() // the client updates the decides need
	before := a.snapshot()
	p := a.submit("forged and honest", batchOf(forged, honest), mallory)
	w.step()
	wantSkipped(t, p, map[uint32]string{0: crosschain.ErrBadProof.Error()})
	if _, ok := a.decision(x1.ID()); ok {
		t.Fatal("the forged decide recorded a decision")
	}
	if dec, ok := a.decision(x2.ID()); !ok || !dec.Commit {
		t.Fatalf("decision of x2: %+v (present %t), want commit", dec, ok)
	}
	after := a.snapshot()
	for k := range after {
		if strings.Contains(k, x1.ID().String()) && before[k] != after[k] {
			t.Fatalf("the forged step changed %s", k)
		}
	}
}

// TestBatchShapeAndPermission: an empty batch, a step holding two transforms or
// none, too many steps, and a signer allowed xchain/batch but not the steps'
// types all fail and change nothing.
func TestBatchShapeAndPermission(t *testing.T) {
	w := newWorld(t, "alpha", "beta")
	a := w.chains["alpha"]
	x := dvpTx(w, 10, 1000)
	s := signed(t, x, alice, bob)
	w.prepare(s, 0, relayer)
	w.prepare(s, 1, relayer)
	w.step()
	d := w.decideTx(x, relayer)
	w.step()
	before := a.snapshot()
	many := &crosschain.Batch{}
	for range crosschain.MaxBatchSteps + 1 {
		many.Steps = append(many.Steps, crosschain.StepOf(d))
	}
	cases := []struct {
		name   string
		b      *crosschain.Batch
		by     crypto.PrivateKey
		target error
	}{
		{"empty", &crosschain.Batch{}, relayer, crosschain.ErrMalformed},
		{"two in one step", &crosschain.Batch{Steps: []crosschain.Step{{Decide: d, Finish: w.finishTx(x, 0, relayer)}}}, relayer, crosschain.ErrEmptyBatch},
		{"nothing in a step", &crosschain.Batch{Steps: []crosschain.Step{crosschain.StepOf(d), {}}}, relayer, crosschain.ErrEmptyBatch},
		{"too many steps", many, relayer, crosschain.ErrMalformed},
		{"batch allowed, decide not", batchOf(d), dave, transform.ErrUnauthorized},
		{"decide allowed, batch not", batchOf(d), alice, transform.ErrUnauthorized},
	}
	var ps []*pending
	for _, c := range cases {
		ps = append(ps, a.submit(c.name, c.b, c.by))
	}
	w.step()
	for i, c := range cases {
		mustFail(t, ps[i], c.target)
	}
	if err := sameState(before, a.snapshot(), crosschain.LCPrefix, crosschain.LCRootPrefix); err != nil {
		t.Fatalf("alpha: %v", err)
	}
	// The same decide, batched by the relayer, applies.
	p := a.submit("decide", batchOf(d), relayer)
	w.step()
	wantSkipped(t, p, nil)
}

// TestBatchCarriesItsStepsSignatures: the parties' signatures a batch's steps
// carry are offered to the block's batch check, every one of them.
func TestBatchCarriesItsStepsSignatures(t *testing.T) {
	x := crosschain.XTx{Legs: []crosschain.Leg{
		{Chain: "alpha", Asset: "SEC", From: addr(alice), To: addr(bob), Amount: 1},
		{Chain: "beta", Asset: "USD", From: addr(bob), To: addr(alice), Amount: 1},
	}, Coordinator: "alpha", Deadline: T0 + 60_000, Nonce: 1}
	s := signed(t, x, alice, bob)
	b := batchOf(&crosschain.Prepare{Tx: *s, Leg: 1}, &crosschain.Decide{XTx: x, Sigs: s.Sigs}, &crosschain.Finish{XTx: x, Leg: 1})
	if got := len(b.CarriedSignatures()); got != 4 {
		t.Fatalf("%d carried signatures, want 4 (two per step that carries them)", got)
	}
}
