package crosschain

import (
	"fmt"

	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/proof"
	"github.com/plugchain/plug/chain/transform"
)

// The engine answers one question for every party that drives an XTx along —
// the relay, `plug settle` while it waits, settlement.Query and the
// simulations: given what has been read of the XTx's chains, where is the XTx
// in its lifecycle, what must be read next, and which steps are due? It reads
// nothing and keeps no clock; a driver fills an Observation, calls Plan, makes
// the reads the plan asks for (Fill), calls Plan again, and submits the steps
// once nothing is left to read. The whole contract is in doc.go.

// Observation is what a driver has read of one XTx's chains at one moment. A
// field the driver has not read (Read false) makes Plan ask for it.
type Observation struct {
	Signed Signed
	// SigsOK says every party's signature verifies; without it no prepare is
	// due (it would fail) and the decide does not prepare the coordinator's
	// legs itself.
	SigsOK bool
	// Coordinator is the coordinator chain as the driver sees it; its block
	// time is the engine's only clock (deadlines are the coordinator's).
	Coordinator ChainView
	// Decision is the coordinator's decision record, read at its latest height.
	Decision DecisionRead
	// Legs are the legs in order.
	Legs []LegView

	id hash.Hash
}

// ChainView is one chain as a driver sees it.
type ChainView struct {
	// Reachable: the driver follows the chain (it can read and submit there).
	Reachable bool
	// Height and Time are its latest committed block's.
	Height uint64
	Time   int64
}

// LegView is what a driver knows of one leg.
type LegView struct {
	Chain ChainView
	// ToCoordinator is the highest height of the leg's chain whose root the
	// coordinator's light client of it has, or will have before the driver's
	// next transaction on the coordinator executes (0: no client). Only for
	// legs on another chain than the coordinator.
	ToCoordinator uint64
	// FromCoordinator is likewise the highest coordinator height the leg
	// chain's client of the coordinator has.
	FromCoordinator uint64
	// Done: the driver already knows the leg finished (committed or aborted);
	// it is not read again.
	Done bool
	// Record is the leg's record at its chain's latest height.
	Record RecordRead
	// Proven is the leg's record read with a proof at the height the
	// coordinator's client can check (remote legs, before the decision).
	Proven ProofRead
	// DecisionProof is the decision read with a proof at the coordinator height
	// the leg chain's client can check (remote legs, once decided).
	DecisionProof ProofRead
}

// DecisionRead is a read of the decision record.
type DecisionRead struct {
	Read, Found bool
	Decision    Decision
}

// RecordRead is a read of a leg record.
type RecordRead struct {
	Read, Found bool
	Record      LegRecord
}

// ProofRead is a read of a key with its Merkle proof at a fixed height.
type ProofRead struct {
	Read, Found bool
	// At is the height the read asked for.
	At    uint64
	Proof Proof
	// Record is the decoded value, for leg records.
	Record LegRecord
}

// ReadKind says which field of an Observation a read fills.
type ReadKind uint8

// The reads a plan may ask for.
const (
	// ReadDecision: the decision at the coordinator's latest height.
	ReadDecision ReadKind = iota + 1
	// ReadRecord: leg Leg's record at its chain's latest height.
	ReadRecord
	// ReadProvenRecord: leg Leg's record at Height, with its proof.
	ReadProvenRecord
	// ReadDecisionProof: the decision at coordinator Height, with its proof,
	// for leg Leg's finish.
	ReadDecisionProof
)

// ReadRequest is one state read a plan needs before it can say more.
type ReadRequest struct {
	Kind  ReadKind
	Leg   int // -1 for ReadDecision
	Chain string
	Key   string
	// Height is the height to read at; 0 means the latest.
	Height uint64
	// Prove: the answer must carry a Merkle proof (it goes into a step).
	Prove bool
}

// StepKind is a protocol step a driver submits.
type StepKind string

// The steps a plan may make due.
const (
	StepPrepare StepKind = "prepare"
	StepDecide  StepKind = "decide"
	StepFinish  StepKind = "finish"
)

// Action is a step a plan makes due: the transaction to submit and where.
type Action struct {
	Kind StepKind
	// Chain is where it is submitted.
	Chain string
	// Leg is the leg it prepares or finishes; -1 for a decide.
	Leg int
	// Key names the step for the driver's retry bookkeeping: one key per
	// (XTx, kind, leg), the same in every plan.
	Key string
	// Transform is the transaction's body.
	Transform transform.Transform
}

// Wait says that a step needs Dest's light client of Source at Height or
// above: the driver updates that client and plans again.
type Wait struct {
	Source, Dest string
	Height       uint64
}

// Plan is the engine's answer for one Observation.
type Plan struct {
	// Status is the XTx's lifecycle status: pending (a leg has no record, or
	// is refused, and nothing is decided), prepared (every leg prepared,
	// nothing decided), committed or aborted (decided).
	Status Status
	// Final: decided, and every leg finished.
	Final bool
	// Reason says why the XTx aborted, or why a leg was refused.
	Reason string
	// Reads are what must be read before the plan can say more; while any
	// are left, Steps may be incomplete.
	Reads []ReadRequest
	// Steps are due now, given what was read.
	Steps []Action
	// Waits are light clients a step waits for.
	Waits []Wait
}

// Pending is the status of a leg without a record, and of an XTx that is not
// decided while some leg has none (or is refused).
const Pending Status = "pending"

// ID is the XTx's ID.
func (o *Observation) ID() hash.Hash { return o.id }

// NewObservation starts an observation of s, whose XTx has ID id (the driver
// has it already: it keys its records by it), with nothing read.
func NewObservation(id hash.Hash, s Signed) *Observation {
	return &Observation{Signed: s, Legs: make([]LegView, len(s.XTx.Legs)), id: id}
}

// Fill records the answer to r: whether the key was found, its raw value, the
// height it was read at and, for proven reads, the proof. A value that does
// not decode is an error and fills nothing.
func (o *Observation) Fill(r ReadRequest, found bool, value []byte, height uint64, p *proof.StateProof) error {
	if r.Leg >= len(o.Legs) || (r.Kind != ReadDecision && r.Leg < 0) {
		return fmt.Errorf("%w: read of leg %d of %d", ErrMalformed, r.Leg, len(o.Legs))
	}
	switch r.Kind {
	case ReadDecision:
		d := DecisionRead{Read: true, Found: found}
		if found {
			if err := encoding.UnmarshalLax(value, &d.Decision); err != nil {
				return fmt.Errorf("decision of %s: %w", o.ID().Short(), err)
			}
		}
		o.Decision = d
	case ReadRecord:
		rr := RecordRead{Read: true, Found: found}
		if found {
			if err := encoding.UnmarshalLax(value, &rr.Record); err != nil {
				return fmt.Errorf("leg %d of %s: %w", r.Leg, o.ID().Short(), err)
			}
		}
		o.Legs[r.Leg].Record = rr
	case ReadProvenRecord, ReadDecisionProof:
		pr := ProofRead{Read: true, Found: found, At: r.Height}
		if found {
			pr.Proof = Proof{Height: height, Value: value, Proof: p}
			if r.Kind == ReadProvenRecord {
				if err := encoding.UnmarshalLax(value, &pr.Record); err != nil {
					return fmt.Errorf("leg %d of %s: %w", r.Leg, o.ID().Short(), err)
				}
			}
		}
		if r.Kind == ReadProvenRecord {
			o.Legs[r.Leg].Proven = pr
		} else {
			o.Legs[r.Leg].DecisionProof = pr
		}
	default:
		return fmt.Errorf("%w: read kind %d", ErrMalformed, r.Kind)
	}
	return nil
}

// PlanOf returns what is due for o. It is a pure function of o.
func PlanOf(o *Observation) Plan {
	var p Plan
	x := &o.Signed.XTx
	id := o.ID()
	if !o.Decision.Read && o.Coordinator.Reachable {
		p.Reads = append(p.Reads, ReadRequest{Kind: ReadDecision, Leg: -1, Chain: x.Coordinator, Key: DecisionKey(id)})
	}
	if o.Decision.Found {
		decided(o, &p)
	} else if o.Decision.Read || !o.Coordinator.Reachable {
		undecided(o, &p)
	}
	summarize(o, &p)
	return p
}

// undecided plans an XTx the coordinator has not decided: the prepares of legs
// with no record, and the decide once every leg is proven prepared, one is
// proven refused, or the deadline passed.
func undecided(o *Observation, p *Plan) {
	x := &o.Signed.XTx
	id := o.ID()
	coord := x.Coordinator
	if o.Coordinator.Reachable && o.Coordinator.Time > x.Deadline {
		p.Steps = append(p.Steps, Action{Kind: StepDecide, Chain: coord, Leg: -1, Key: StepKey(StepDecide, id, -1), Transform: &Decide{XTx: *x}})
		return
	}
	var proofs []LegProof
	ready, refused, inline := o.Coordinator.Reachable, false, false
	for i, l := range x.Legs {
		v := &o.Legs[i]
		if !v.Chain.Reachable {
			ready = false
			continue
		}
		if l.Chain == coord || !o.Coordinator.Reachable {
			// Read at the latest height: the coordinator reads its own legs
			// itself; with no coordinator, only the prepares are left.
			if !v.Record.Read {
				p.Reads = append(p.Reads, ReadRequest{Kind: ReadRecord, Leg: i, Chain: l.Chain, Key: LegKey(id, i)})
				ready = false
				continue
			}
			if !v.Record.Found {
				if o.Coordinator.Reachable && l.Kind != In && o.SigsOK {
					// The coordinator's own leg: the decide prepares it,
					// carrying the parties' signatures (Decide.Sigs), one
					// transaction fewer than a prepare of its own.
					inline = true
					continue
				}
				ready = false
				prepare(o, p, i)
				continue
			}
			if v.Record.Record.Status == Refused {
				refused = true
			}
			continue
		}
		if v.ToCoordinator == 0 {
			ready = false
			p.Waits = append(p.Waits, Wait{Source: l.Chain, Dest: coord, Height: 1})
			continue
		}
		h := min(v.ToCoordinator, v.Chain.Height)
		if !v.Proven.Read || v.Proven.At != h {
			p.Reads = append(p.Reads, ReadRequest{Kind: ReadProvenRecord, Leg: i, Chain: l.Chain, Key: LegKey(id, i), Height: h, Prove: true})
			ready = false
			continue
		}
		if !v.Proven.Found {
			ready = false
			if h < v.Chain.Height {
				// The record may sit above what the client has yet.
				p.Waits = append(p.Waits, Wait{Source: l.Chain, Dest: coord, Height: v.Chain.Height})
			}
			prepare(o, p, i)
			continue
		}
		if v.Proven.Record.Status == Refused {
			refused = true
		}
		proofs = append(proofs, LegProof{Leg: uint32(i), Proof: v.Proven.Proof})
	}
	if !o.Coordinator.Reachable || (!ready && !refused) {
		return
	}
	d := &Decide{XTx: *x, Proofs: proofs}
	if inline && !refused {
		d.Sigs = o.Signed.Sigs
	}
	p.Steps = append(p.Steps, Action{Kind: StepDecide, Chain: coord, Leg: -1, Key: StepKey(StepDecide, id, -1), Transform: d})
}

// prepare makes leg i's prepare due, if every party signed (a prepare without
// the signatures fails).
func prepare(o *Observation, p *Plan, i int) {
	if !o.SigsOK {
		return
	}
	id := o.ID()
	p.Steps = append(p.Steps, Action{Kind: StepPrepare, Chain: o.Signed.XTx.Legs[i].Chain, Leg: i,
		Key: StepKey(StepPrepare, id, i), Transform: &Prepare{Tx: o.Signed, Leg: uint32(i)}})
}

// decided plans a decided XTx: the finish of every leg not finished yet, with
// a proof of the decision where the leg's chain is not the coordinator.
func decided(o *Observation, p *Plan) {
	x := &o.Signed.XTx
	id := o.ID()
	dec := &o.Decision.Decision
	for i, l := range x.Legs {
		v := &o.Legs[i]
		if v.Done || !v.Chain.Reachable {
			continue
		}
		if !v.Record.Read {
			p.Reads = append(p.Reads, ReadRequest{Kind: ReadRecord, Leg: i, Chain: l.Chain, Key: LegKey(id, i)})
		} else if v.Record.Found && finished(v.Record.Record.Status) {
			continue
		}
		f := &Finish{XTx: *x, Leg: uint32(i)}
		if l.Chain != x.Coordinator {
			if v.FromCoordinator < dec.Height {
				p.Waits = append(p.Waits, Wait{Source: x.Coordinator, Dest: l.Chain, Height: dec.Height})
				continue
			}
			h := min(v.FromCoordinator, o.Coordinator.Height)
			if h < dec.Height {
				continue // the coordinator's height as last seen is below its decision: see it again
			}
			if !v.DecisionProof.Read || v.DecisionProof.At != h {
				p.Reads = append(p.Reads, ReadRequest{Kind: ReadDecisionProof, Leg: i, Chain: x.Coordinator, Key: DecisionKey(id), Height: h, Prove: true})
				continue
			}
			if !v.DecisionProof.Found {
				continue // not at that height: the coordinator's node is behind
			}
			pr := v.DecisionProof.Proof
			f.Decision = &pr
		}
		if !v.Record.Read {
			continue
		}
		p.Steps = append(p.Steps, Action{Kind: StepFinish, Chain: l.Chain, Leg: i, Key: StepKey(StepFinish, id, i), Transform: f})
	}
}

// summarize sets the plan's Status, Final and Reason from what was read.
func summarize(o *Observation, p *Plan) {
	prepared, final := true, o.Decision.Found
	for i := range o.Legs {
		v := &o.Legs[i]
		st := o.legStatus(i)
		switch st {
		case Committed, Aborted:
		case Prepared:
			final = false
		case Refused:
			final, prepared = false, false
			if p.Reason == "" {
				p.Reason = fmt.Sprintf("leg %d on %s refused: %s", i, o.Signed.XTx.Legs[i].Chain, v.reason())
			}
		default:
			final, prepared = false, false
		}
	}
	switch {
	case o.Decision.Found && o.Decision.Decision.Commit:
		p.Status = Committed
	case o.Decision.Found:
		p.Status, p.Reason = Aborted, o.Decision.Decision.Reason
	case prepared:
		p.Status = Prepared
	default:
		p.Status = Pending
	}
	p.Final = final
}

// LegStatus is leg i's lifecycle status as read: Pending without a record.
func (o *Observation) LegStatus(i int) Status { return o.legStatus(i) }

func (o *Observation) legStatus(i int) Status {
	v := &o.Legs[i]
	switch {
	case v.Done && o.Decision.Found && o.Decision.Decision.Commit:
		return Committed
	case v.Done:
		return Aborted
	case v.Record.Found:
		return v.Record.Record.Status
	case v.Proven.Found:
		return v.Proven.Record.Status
	}
	return Pending
}

func (v *LegView) reason() string {
	if v.Record.Found {
		return v.Record.Record.Reason
	}
	return v.Proven.Record.Reason
}

// finished reports whether a leg in status s is done with the protocol.
func finished(s Status) bool { return s == Committed || s == Aborted }

// StepKey names a step of XTx id for a driver's retry bookkeeping:
// "decide/<id>", "prepare/<id>/<leg>", "finish/<id>/<leg>" (leg is ignored
// for a decide).
func StepKey(kind StepKind, id hash.Hash, leg int) string {
	if kind == StepDecide {
		return "decide/" + id.String()
	}
	return fmt.Sprintf("%s/%s/%d", kind, id, leg)
}
