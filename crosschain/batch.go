package crosschain

import (
	"errors"
	"fmt"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/transform"
)

// MaxBatchSteps is the most steps one Batch carries. The transaction size limit
// (tx.MaxTxSize) usually binds first: a decide with its proof is about a
// kilobyte.
const MaxBatchSteps = 128

// ErrEmptyBatch: a batch has no step, or a step that is not exactly one of
// prepare, decide and finish.
var ErrEmptyBatch = errors.New("empty batch step")

// Batch carries many steps of the two-phase commit to one chain in one
// transaction: what a relay has for that chain after one pass over its
// trades. It exists for cost. Each transaction pays for its signature, its
// gossip, its receipt, its index entry and its nonce on every validator, and a
// relay settling a thousand trades a second would otherwise send two thousand
// of them.
//
// The steps run in order, each as its own transaction would: a step sees what
// the steps before it wrote. A step whose Verify fails is skipped and changes
// nothing; the others still apply. Another relay may have carried the same
// step first, which is no reason to throw away the rest of the batch. The
// receipt lists the skipped steps and why (transform.Partial). A batch of
// which no step applies fails with the first step's error, so a batch that
// does nothing is visibly refused. A step whose Apply fails after its Verify
// passed fails the whole batch; none of its steps then applies.
//
// The signers need the RBAC permission of xchain/batch and of the type of
// every step: a batch grants nothing its steps would not.
type Batch struct {
	Steps []Step `cbor:"1,keyasint" json:"steps"`

	skipped []transform.Skip
}

// Step is one step of a Batch: exactly one of its fields is set.
type Step struct {
	Prepare *Prepare `cbor:"1,keyasint,omitempty" json:"prepare,omitempty"`
	Decide  *Decide  `cbor:"2,keyasint,omitempty" json:"decide,omitempty"`
	Finish  *Finish  `cbor:"3,keyasint,omitempty" json:"finish,omitempty"`
}

// StepOf wraps a prepare, decide or finish as a Step; anything else gives an
// empty Step, which a Batch refuses.
func StepOf(tr transform.Transform) Step {
	switch t := tr.(type) {
	case *Prepare:
		return Step{Prepare: t}
	case *Decide:
		return Step{Decide: t}
	case *Finish:
		return Step{Finish: t}
	}
	return Step{}
}

// Transform returns the step's transform and its type name, or nil and "" if
// the step does not hold exactly one.
func (s *Step) Transform() (transform.Transform, string) {
	var tr transform.Transform
	var name string
	n := 0
	if s.Prepare != nil {
		tr, name, n = s.Prepare, TypePrepare, n+1
	}
	if s.Decide != nil {
		tr, name, n = s.Decide, TypeDecide, n+1
	}
	if s.Finish != nil {
		tr, name, n = s.Finish, TypeFinish, n+1
	}
	if n != 1 {
		return nil, ""
	}
	return tr, name
}

// Valid reports whether the step holds exactly one transform.
func (s *Step) Valid() bool {
	tr, _ := s.Transform()
	return tr != nil
}

// Keys implements transform.Transform: every step's keys, a key that one step
// writes declared written.
func (t *Batch) Keys(ctx *transform.Context) (r, w []string) {
	if len(t.Steps) > MaxBatchSteps {
		return nil, nil // Verify refuses it; declaring thousands of keys first would cost
	}
	for i := range t.Steps {
		if tr, _ := t.Steps[i].Transform(); tr != nil {
			sr, sw := tr.Keys(ctx)
			r, w = append(r, sr...), append(w, sw...)
		}
	}
	w = dedupe(w)
	written := make(map[string]bool, len(w))
	for _, k := range w {
		written[k] = true
	}
	reads := r[:0]
	for _, k := range dedupe(r) {
		if !written[k] {
			reads = append(reads, k)
		}
	}
	return reads, w
}

// CarriedSignatures implements transform.SignatureCarrier: those of every step
// that carries the parties' signatures.
func (t *Batch) CarriedSignatures() []crypto.Item {
	var items []crypto.Item
	for i := range t.Steps {
		if tr, _ := t.Steps[i].Transform(); tr != nil {
			if sc, ok := tr.(transform.SignatureCarrier); ok {
				items = append(items, sc.CarriedSignatures()...)
			}
		}
	}
	return items
}

// Authorizations implements transform.Transform: the RBAC policy decides who
// may, for the batch and for each step's type (Verify).
func (t *Batch) Authorizations(*transform.Context) []crypto.Address { return nil }

// Verify implements transform.Transform: the batch's shape and the signers'
// permission for every step's type. The steps themselves are verified in
// Apply, each against the state the steps before it left.
func (t *Batch) Verify(ctx *transform.Context, _ transform.State) error {
	if len(t.Steps) == 0 || len(t.Steps) > MaxBatchSteps {
		return fmt.Errorf("%w: %w: %d steps (1..%d)", transform.ErrInvalid, ErrMalformed, len(t.Steps), MaxBatchSteps)
	}
	allowed := map[string]bool{}
	for i := range t.Steps {
		tr, name := t.Steps[i].Transform()
		if tr == nil {
			return fmt.Errorf("%w: %w: step %d", transform.ErrInvalid, ErrEmptyBatch, i)
		}
		if allowed[name] || ctx.Policy == nil {
			continue
		}
		if err := ctx.Policy.Allow(name, ctx.Signers); err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
		allowed[name] = true
	}
	return nil
}

// Apply implements transform.Transform: each step verified and applied in
// order, the ones that fail verification skipped.
func (t *Batch) Apply(ctx *transform.Context, st transform.State) error {
	t.skipped = t.skipped[:0]
	var first error
	memo := newClientMemo()
	for i := range t.Steps {
		tr, name := t.Steps[i].Transform()
		switch s := tr.(type) {
		case *Prepare:
			s.clients = memo
		case *Decide:
			s.clients = memo
		case *Finish:
			s.clients = memo
		}
		if err := tr.Verify(ctx, st); err != nil {
			err = fmt.Errorf("step %d (%s): %w", i, name, err)
			if first == nil {
				first = err
			}
			t.skipped = append(t.skipped, transform.Skip{Part: uint32(i), Error: err.Error()})
			continue
		}
		if err := tr.Apply(ctx, st); err != nil {
			return fmt.Errorf("step %d (%s): %w", i, name, err)
		}
	}
	if len(t.skipped) == len(t.Steps) {
		return fmt.Errorf("no step applied: %w", first)
	}
	return nil
}

// Skipped implements transform.Partial.
func (t *Batch) Skipped() []transform.Skip { return t.skipped }

// Finished is an XTx some legs of which a transaction finished.
type Finished struct {
	ID   hash.Hash
	Legs int
}

// FinishedLegs reports which XTxs a successfully executed transform finished
// legs of, and how many, given the parts its receipt says it skipped: a Finish
// its one leg, a Decide the coordinator's own legs, a Batch those of its
// steps that applied; anything else none. Whoever tracks when a trade is final
// from committed transactions (every leg finished) counts with it, rather than
// with finishes alone.
func FinishedLegs(tr transform.Transform, skipped []transform.Skip) []Finished {
	switch t := tr.(type) {
	case *Finish:
		return []Finished{{ID: t.xid.of(&t.XTx), Legs: 1}}
	case *Decide:
		legs := 0
		for _, l := range t.XTx.Legs {
			if l.Chain == t.XTx.Coordinator {
				legs++
			}
		}
		return []Finished{{ID: t.xid.of(&t.XTx), Legs: legs}}
	case *Batch:
		skip := make(map[uint32]bool, len(skipped))
		for _, s := range skipped {
			skip[s.Part] = true
		}
		var out []Finished
		for i := range t.Steps {
			if skip[uint32(i)] {
				continue
			}
			if tr, _ := t.Steps[i].Transform(); tr != nil {
				out = append(out, FinishedLegs(tr, nil)...)
			}
		}
		return out
	}
	return nil
}
