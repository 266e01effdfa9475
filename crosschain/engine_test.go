package crosschain_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/crosschain"
)

// engineXTx is a DvP coordinated by alpha: leg 0 on alpha (alice pays bob),
// leg 1 on beta (bob pays alice).
func engineXTx(t *testing.T) *crosschain.Signed {
	t.Helper()
	x := crosschain.XTx{Coordinator: "alpha", Deadline: T0 + 60_000, Legs: []crosschain.Leg{
		{Chain: "alpha", Asset: "EUR", From: addr(alice), To: addr(bob), Amount: 5},
		{Chain: "beta", Asset: "USD", From: addr(bob), To: addr(alice), Amount: 7},
	}}
	return signed(t, x, alice, bob)
}

// planOut renders a plan in one line per item, for the table below.
func planOut(p crosschain.Plan) []string {
	out := []string{fmt.Sprintf("status %s final=%t", p.Status, p.Final)}
	for _, r := range p.Reads {
		out = append(out, fmt.Sprintf("read %s leg=%d h=%d prove=%t", strings.SplitN(r.Key, "/", 3)[1], r.Leg, r.Height, r.Prove))
	}
	for _, s := range p.Steps {
		desc := fmt.Sprintf("step %s on %s leg=%d", s.Kind, s.Chain, s.Leg)
		switch tr := s.Transform.(type) {
		case *crosschain.Decide:
			desc += fmt.Sprintf(" proofs=%d sigs=%d", len(tr.Proofs), len(tr.Sigs))
		case *crosschain.Finish:
			if tr.Decision != nil {
				desc += fmt.Sprintf(" decision@%d", tr.Decision.Height)
			}
		}
		out = append(out, desc)
	}
	for _, w := range p.Waits {
		out = append(out, fmt.Sprintf("wait %s->%s h=%d", w.Source, w.Dest, w.Height))
	}
	return out
}

// TestPlan is the engine's table: what an observation makes due.
func TestPlan(t *testing.T) {
	s := engineXTx(t)
	reachable := func(o *crosschain.Observation) {
		o.SigsOK = true
		o.Coordinator = crosschain.ChainView{Reachable: true, Height: 20, Time: T0 + 10_000}
		o.Legs[0].Chain = crosschain.ChainView{Reachable: true, Height: 20, Time: T0 + 10_000}
		o.Legs[1].Chain = crosschain.ChainView{Reachable: true, Height: 30, Time: T0 + 10_000}
		o.Legs[1].ToCoordinator, o.Legs[1].FromCoordinator = 30, 20
	}
	undecided := func(o *crosschain.Observation) { reachable(o); o.Decision = crosschain.DecisionRead{Read: true} }
	record := func(st crosschain.Status) crosschain.RecordRead {
		return crosschain.RecordRead{Read: true, Found: true, Record: crosschain.LegRecord{Status: st, Height: 9, Reason: "because"}}
	}
	proven := func(st crosschain.Status, h uint64) crosschain.ProofRead {
		return crosschain.ProofRead{Read: true, Found: true, At: h, Proof: crosschain.Proof{Height: h}, Record: crosschain.LegRecord{Status: st, Reason: "because"}}
	}
	decided := func(commit bool, h uint64) func(o *crosschain.Observation) {
		return func(o *crosschain.Observation) {
			reachable(o)
			o.Decision = crosschain.DecisionRead{Read: true, Found: true, Decision: crosschain.Decision{Commit: commit, Height: h, Reason: "why"}}
		}
	}
	cases := []struct {
		name string
		set  func(o *crosschain.Observation)
		want []string
	}{
		{"nothing read: the decision first", reachable, []string{
			"status pending final=false", "read decision leg=-1 h=0 prove=false"}},
		{"undecided: the coordinator's own leg at its latest height, the remote one proven where the client can check it", undecided, []string{
			"status pending final=false", "read leg leg=0 h=0 prove=false", "read leg leg=1 h=30 prove=true"}},
		{"client behind the leg's chain: read at the client's height", func(o *crosschain.Observation) {
			undecided(o)
			o.Legs[1].ToCoordinator = 25
		}, []string{"status pending final=false", "read leg leg=0 h=0 prove=false", "read leg leg=1 h=25 prove=true"}},
		{"deadline passed: decide at once, nothing to read", func(o *crosschain.Observation) {
			undecided(o)
			o.Coordinator.Time = T0 + 60_001
		}, []string{"status pending final=false", "step decide on alpha leg=-1 proofs=0 sigs=0"}},
		{"every leg prepared: decide with the remote proof", func(o *crosschain.Observation) {
			undecided(o)
			o.Legs[0].Record = record(crosschain.Prepared)
			o.Legs[1].Proven = proven(crosschain.Prepared, 30)
		}, []string{"status prepared final=false", "step decide on alpha leg=-1 proofs=1 sigs=0"}},
		{"coordinator's leg unprepared: the decide prepares it with the signatures", func(o *crosschain.Observation) {
			undecided(o)
			o.Legs[0].Record = crosschain.RecordRead{Read: true}
			o.Legs[1].Proven = proven(crosschain.Prepared, 30)
		}, []string{"status pending final=false", "step decide on alpha leg=-1 proofs=1 sigs=2"}},
		{"unsigned: no inline decide, no prepare", func(o *crosschain.Observation) {
			undecided(o)
			o.SigsOK = false
			o.Legs[0].Record = crosschain.RecordRead{Read: true}
			o.Legs[1].Proven = proven(crosschain.Prepared, 30)
		}, []string{"status pending final=false"}},
		{"remote leg without a record: prepare it, no decide", func(o *crosschain.Observation) {
			undecided(o)
			o.Legs[0].Record = record(crosschain.Prepared)
			o.Legs[1].Proven = crosschain.ProofRead{Read: true, At: 30}
		}, []string{"status pending final=false", "step prepare on beta leg=1"}},
		{"remote record maybe above the client: prepare and wait for the client", func(o *crosschain.Observation) {
			undecided(o)
			o.Legs[1].ToCoordinator = 25
			o.Legs[0].Record = record(crosschain.Prepared)
			o.Legs[1].Proven = crosschain.ProofRead{Read: true, At: 25}
		}, []string{"status pending final=false", "step prepare on beta leg=1", "wait beta->alpha h=30"}},
		{"a stale read (another height) is read again", func(o *crosschain.Observation) {
			undecided(o)
			o.Legs[0].Record = record(crosschain.Prepared)
			o.Legs[1].Proven = proven(crosschain.Prepared, 28)
		}, []string{"status prepared final=false", "read leg leg=1 h=30 prove=true"}},
		{"no light client of the leg's chain: wait, no decide", func(o *crosschain.Observation) {
			undecided(o)
			o.Legs[1].ToCoordinator = 0
			o.Legs[0].Record = record(crosschain.Prepared)
		}, []string{"status pending final=false", "wait beta->alpha h=1"}},
		{"a proven refusal: decide (abort) at once", func(o *crosschain.Observation) {
			undecided(o)
			o.Legs[0].Record = crosschain.RecordRead{Read: true}
			o.Legs[1].Proven = proven(crosschain.Refused, 30)
		}, []string{"status pending final=false", "step decide on alpha leg=-1 proofs=1 sigs=0"}},
		{"leg chain not followed: nothing decides", func(o *crosschain.Observation) {
			undecided(o)
			o.Legs[1].Chain.Reachable = false
			o.Legs[0].Record = record(crosschain.Prepared)
		}, []string{"status pending final=false"}},
		{"coordinator not followed: only the prepares", func(o *crosschain.Observation) {
			reachable(o)
			o.Coordinator.Reachable = false
			o.Legs[0].Record = crosschain.RecordRead{Read: true}
			o.Legs[1].Record = record(crosschain.Prepared)
		}, []string{"status pending final=false", "step prepare on alpha leg=0"}},
		{"decided: both records, and the decision proven where beta's client is", decided(true, 15), []string{
			"status committed final=false", "read leg leg=0 h=0 prove=false", "read leg leg=1 h=0 prove=false", "read decision leg=1 h=20 prove=true"}},
		{"decided above beta's client: wait, finish the local leg", func(o *crosschain.Observation) {
			decided(true, 15)(o)
			o.Legs[1].FromCoordinator = 14
			o.Legs[0].Record = record(crosschain.Prepared)
			o.Legs[1].Record = record(crosschain.Prepared)
		}, []string{"status committed final=false", "step finish on alpha leg=0", "wait alpha->beta h=15"}},
		{"decided and proven: finish both legs", func(o *crosschain.Observation) {
			decided(false, 15)(o)
			o.Legs[0].Record = record(crosschain.Prepared)
			o.Legs[1].Record = record(crosschain.Refused)
			o.Legs[1].DecisionProof = crosschain.ProofRead{Read: true, Found: true, At: 20, Proof: crosschain.Proof{Height: 20}}
		}, []string{"status aborted final=false", "step finish on alpha leg=0", "step finish on beta leg=1 decision@20"}},
		{"one leg finished, the other known done: final", func(o *crosschain.Observation) {
			decided(true, 15)(o)
			o.Legs[0].Record = record(crosschain.Committed)
			o.Legs[1].Done = true
		}, []string{"status committed final=true"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := crosschain.NewObservation(s.XTx.ID(), *s)
			c.set(o)
			got := planOut(crosschain.PlanOf(o))
			if !slices.Equal(got, c.want) {
				t.Errorf("plan:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(c.want, "\n  "))
			}
		})
	}
}

// TestPlanSafety draws random observations and checks what no plan may do,
// whatever was read: finish before the decision is read and found, finish a
// remote leg without a proof of the decision at or above its height, commit
// (decide with every leg proven) while a remote leg is unproven, or ask for a
// step and a read of the same thing at once.
func TestPlanSafety(t *testing.T) {
	s := engineXTx(t)
	r := rand.New(rand.NewPCG(1, 2))
	statuses := []crosschain.Status{crosschain.Prepared, crosschain.Refused, crosschain.Committed, crosschain.Aborted}
	for n := 0; n < 20_000; n++ {
		o := crosschain.NewObservation(s.XTx.ID(), *s)
		o.SigsOK = r.IntN(2) == 0
		o.Coordinator = crosschain.ChainView{Reachable: r.IntN(8) != 0, Height: r.Uint64N(40), Time: T0 + r.Int64N(120_000)}
		o.Decision = crosschain.DecisionRead{Read: r.IntN(4) != 0, Found: r.IntN(2) == 0, Decision: crosschain.Decision{Commit: r.IntN(2) == 0, Height: r.Uint64N(40)}}
		if !o.Decision.Read {
			o.Decision.Found = false
		}
		for i := range o.Legs {
			v := &o.Legs[i]
			v.Chain = crosschain.ChainView{Reachable: r.IntN(8) != 0, Height: r.Uint64N(40)}
			v.ToCoordinator, v.FromCoordinator = r.Uint64N(40), r.Uint64N(40)
			v.Done = r.IntN(6) == 0
			v.Record = crosschain.RecordRead{Read: r.IntN(3) != 0, Found: r.IntN(2) == 0, Record: crosschain.LegRecord{Status: statuses[r.IntN(4)]}}
			h := r.Uint64N(40)
			v.Proven = crosschain.ProofRead{Read: r.IntN(3) != 0, Found: r.IntN(2) == 0, At: h, Proof: crosschain.Proof{Height: h}, Record: crosschain.LegRecord{Status: statuses[r.IntN(4)]}}
			h = r.Uint64N(40)
			v.DecisionProof = crosschain.ProofRead{Read: r.IntN(3) != 0, Found: r.IntN(2) == 0, At: h, Proof: crosschain.Proof{Height: h}}
		}
		p := crosschain.PlanOf(o)
		for _, st := range p.Steps {
			switch tr := st.Transform.(type) {
			case *crosschain.Finish:
				if !o.Decision.Found {
					t.Fatalf("case %d: finish of leg %d without a decision: %+v", n, st.Leg, o)
				}
				l := s.XTx.Legs[st.Leg]
				if l.Chain != s.XTx.Coordinator && (tr.Decision == nil || tr.Decision.Height < o.Decision.Decision.Height) {
					t.Fatalf("case %d: finish of remote leg %d without a proof at or above the decision's height", n, st.Leg)
				}
			case *crosschain.Decide:
				if o.Decision.Found {
					t.Fatalf("case %d: decide of a decided XTx", n)
				}
				if o.Coordinator.Time <= s.XTx.Deadline {
					for _, lp := range tr.Proofs {
						if pr := o.Legs[lp.Leg].Proven; !pr.Found || pr.Proof.Height != lp.Proof.Height {
							t.Fatalf("case %d: decide with a proof of leg %d that was not read", n, lp.Leg)
						}
					}
				}
			case *crosschain.Prepare:
				if !o.SigsOK || o.Decision.Found {
					t.Fatalf("case %d: prepare unsigned or after the decision", n)
				}
			}
			if !slices.ContainsFunc([]string{string(crosschain.StepPrepare), string(crosschain.StepDecide), string(crosschain.StepFinish)}, func(k string) bool { return k == string(st.Kind) }) {
				t.Fatalf("case %d: unknown step kind %q", n, st.Kind)
			}
		}
		if p.Final && !o.Decision.Found {
			t.Fatalf("case %d: final without a decision", n)
		}
	}
}

// TestObservationFill: an answer that does not decode is an error and fills
// nothing; answers land in the fields their reads name.
func TestObservationFill(t *testing.T) {
	s := engineXTx(t)
	o := crosschain.NewObservation(s.XTx.ID(), *s)
	id := s.XTx.ID()
	rd := crosschain.ReadRequest{Kind: crosschain.ReadDecision, Leg: -1, Chain: "alpha", Key: crosschain.DecisionKey(id)}
	if err := o.Fill(rd, true, []byte{0xff, 0x00}, 3, nil); err == nil || o.Decision.Read {
		t.Fatalf("garbage decision: err %v, read %t", err, o.Decision.Read)
	}
	v := encoding.MustMarshal(crosschain.Decision{Commit: true, Height: 3})
	if err := o.Fill(rd, true, v, 3, nil); err != nil || !o.Decision.Found || !o.Decision.Decision.Commit {
		t.Fatalf("decision: %v %+v", err, o.Decision)
	}
	rp := crosschain.ReadRequest{Kind: crosschain.ReadProvenRecord, Leg: 1, Chain: "beta", Key: crosschain.LegKey(id, 1), Height: 7, Prove: true}
	rec := encoding.MustMarshal(crosschain.LegRecord{Status: crosschain.Prepared, Height: 6})
	if err := o.Fill(rp, true, rec, 7, nil); err != nil || o.Legs[1].Proven.Record.Status != crosschain.Prepared || o.Legs[1].Proven.Proof.Height != 7 || o.Legs[1].Proven.At != 7 {
		t.Fatalf("proven record: %v %+v", err, o.Legs[1].Proven)
	}
	if err := o.Fill(crosschain.ReadRequest{Kind: crosschain.ReadRecord, Leg: 5}, false, nil, 0, nil); !errors.Is(err, crosschain.ErrMalformed) {
		t.Fatalf("leg out of range: %v", err)
	}
}
