package crosschain_test

import (
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/crosschain"
)

// signed builds and signs an XTx by keys.
func signed(t tb, x crosschain.XTx, keys ...crypto.PrivateKey) *crosschain.Signed {
	t.Helper()
	s, err := crosschain.NewSigned(x, keys...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// prepare queues xchain/prepare of leg i on its chain, submitted by by.
func (w *world) prepare(s *crosschain.Signed, i int, by crypto.PrivateKey) *pending {
	c := w.chains[s.XTx.Legs[i].Chain]
	return c.submit("prepare", &crosschain.Prepare{Tx: *s, Leg: uint32(i)}, by)
}

// decideTx builds the decide of x with a proof of every remote leg's committed record
// (legs without a record yet are left out), and queues on the coordinator the client
// updates the proofs need.
func (w *world) decideTx(x crosschain.XTx, by crypto.PrivateKey) *crosschain.Decide {
	coord := w.chains[x.Coordinator]
	id := x.ID()
	d := &crosschain.Decide{XTx: x}
	relayed := map[string]bool{}
	for i, l := range x.Legs {
		if l.Chain == x.Coordinator {
			continue
		}
		src := w.chains[l.Chain]
		if _, ok := src.leg(id, i); !ok {
			continue
		}
		if !relayed[l.Chain] {
			relayed[l.Chain] = true
			for _, u := range updates(coord, src) {
				coord.submit("lc/update", u, by)
			}
		}
		d.Proofs = append(d.Proofs, crosschain.LegProof{Leg: uint32(i), Proof: src.prove(crosschain.LegKey(id, i))})
	}
	return d
}

// decide queues a decide of x on its coordinator.
func (w *world) decide(x crosschain.XTx, by crypto.PrivateKey) *pending {
	d := w.decideTx(x, by)
	return w.chains[x.Coordinator].submit("decide", d, by)
}

// finishTx builds the finish of leg i with the proof of the decision, and queues on
// the leg's chain the client updates it needs.
func (w *world) finishTx(x crosschain.XTx, i int, by crypto.PrivateKey) *crosschain.Finish {
	dst := w.chains[x.Legs[i].Chain]
	f := &crosschain.Finish{XTx: x, Leg: uint32(i)}
	if x.Legs[i].Chain != x.Coordinator {
		coord := w.chains[x.Coordinator]
		for _, u := range updates(dst, coord) {
			dst.submit("lc/update", u, by)
		}
		p := coord.prove(crosschain.DecisionKey(x.ID()))
		f.Decision = &p
	}
	return f
}

// finish queues a finish of leg i on its chain.
func (w *world) finish(x crosschain.XTx, i int, by crypto.PrivateKey) *pending {
	f := w.finishTx(x, i, by)
	return w.chains[x.Legs[i].Chain].submit("finish", f, by)
}

func mustOK(t tb, ps ...*pending) {
	t.Helper()
	for _, p := range ps {
		if !p.done || p.code != exec.OK {
			t.Fatalf("%s: done=%t code=%s: %s", p.label, p.done, p.code, p.errStr)
		}
	}
}

func mustFail(t tb, p *pending, target error) {
	t.Helper()
	if !p.done || p.code != exec.Failed || (target != nil && !errIs(p, target)) {
		t.Fatalf("%s: done=%t code=%s err=%q, want failed with %v", p.label, p.done, p.code, p.errStr, target)
	}
}
