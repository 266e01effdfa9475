package relay

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/crosschain"
)

// pending counts the XTxs not done.
func (r *Relay) pending() int {
	n := 0
	for _, x := range r.xtxs {
		if !x.Final {
			n++
		}
	}
	return n
}

// advanceAll moves the XTxs that scanned blocks touched one step — every
// unfinished one, every RetryAfter — reading their records from chain state
// (not from events), with cfg.Workers at once, and saves those whose phase changed.
func (r *Relay) advanceAll(ctx context.Context) int {
	now := r.now()
	full := now.Sub(r.lastFull) >= r.cfg.RetryAfter.Duration
	if full {
		r.lastFull = now
	}
	r.mu.Lock()
	ids := make([]hash.Hash, 0, len(r.dirty))
	for id := range r.dirty {
		if x := r.xtxs[id]; x != nil && !x.Final {
			ids = append(ids, id)
			r.advanced[id] = now
		}
	}
	if full {
		for id, x := range r.xtxs {
			if !x.Final && !r.dirty[id] && now.Sub(r.advanced[id]) >= r.cfg.RetryAfter.Duration {
				ids = append(ids, id)
				r.advanced[id] = now
			}
		}
	}
	clear(r.dirty)
	r.mu.Unlock()
	// Oldest first, so a backlog clears in the order it built up; the ID
	// breaks ties, so that a pass does the same in the same state.
	slices.SortFunc(ids, func(a, b hash.Hash) int {
		if c := cmp.Compare(r.learned(a), r.learned(b)); c != 0 {
			return c
		}
		return bytes.Compare(a[:], b[:])
	})

	r.prefetch(ctx, ids)
	defer func() { r.pre, r.obs = nil, nil }()
	var cmu sync.Mutex
	changed := map[hash.Hash]*xtxRecord{}
	work := make(chan hash.Hash)
	var wg sync.WaitGroup
	for range min(r.cfg.Workers, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				r.mu.Lock()
				x := r.xtxs[id]
				before := fmt.Sprint(x.Status, x.Final, x.Done)
				r.mu.Unlock()
				if err := r.advance(ctx, id, x); err != nil {
					log.Debugw("advance xtx", "id", id.Short(), "err", err)
				}
				r.mu.Lock()
				after := fmt.Sprint(x.Status, x.Final, x.Done)
				r.mu.Unlock()
				if after != before {
					cmu.Lock()
					changed[id] = x
					cmu.Unlock()
					if x.Final {
						r.mu.Lock()
						delete(r.advanced, id)
						r.mu.Unlock()
						log.Infow("xtx finished", "id", id.Short(), "commit", x.Dec != nil && x.Dec.Commit)
					}
				}
			}
		}()
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		work <- id
	}
	close(work)
	wg.Wait()
	if len(changed) > 0 {
		r.mu.Lock()
		err := r.db.save("", 0, changed)
		// A finished XTx is forgotten, in memory and in the db (save drops
		// it): the chains hold its outcome, and a relay that kept every trade
		// it ever carried would grow, and slow, without bound. A step of it
		// seen again in a block is ignored; a prepare teaches it anew, and
		// the next pass finds it final.
		for id, x := range changed {
			if x.Final && err == nil {
				delete(r.xtxs, id)
				delete(r.dirty, id)
			}
		}
		r.mu.Unlock()
		if err != nil {
			log.Warnw("save xtxs", "err", err)
		}
	}
	r.mu.Lock()
	r.m.Pending.Set(float64(r.pending()))
	r.mu.Unlock()
	return len(ids)
}

// recheck makes the next pass advance id again: it waits for a light client,
// which catches up within a block or two, not for a party.
func (r *Relay) recheck(id hash.Hash) {
	r.mu.Lock()
	r.dirty[id] = true
	r.mu.Unlock()
}

// learned is when the relay learned the XTx id.
func (r *Relay) learned(id hash.Hash) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.xtxs[id].Learned
}

// try is a step's last submission: when, and once a node admitted it, on which
// chain with which nonce.
type try struct {
	at    time.Time
	sent  bool
	cs    *chainState
	nonce uint64
	epoch uint64 // cs.epoch when sent
}

// due reports whether step may be (re)submitted now, and marks it submitted. A
// step is not sent again while its transaction is still in flight — its nonce
// not yet committed, with no nonce resync since — however long the chain takes:
// under load, resending would only add duplicates to the backlog. Once its
// nonce is committed (the transaction executed, and failed or has not shown in
// state yet), it is due again RetryAfter after it was sent.
func (r *Relay) due(step string) bool {
	r.triesMu.Lock()
	defer r.triesMu.Unlock()
	if t, ok := r.tries[step]; ok {
		if t.sent && t.epoch == t.cs.epoch.Load() && t.cs.seen.Load() <= t.nonce {
			return false
		}
		if r.now().Sub(t.at) < r.cfg.RetryAfter.Duration {
			return false
		}
	}
	r.tries[step] = try{at: r.now()}
	return true
}

// observe is what the relay knows of x before reading anything: its chains'
// heights and times as last polled, its light clients' provable heights, and
// the decision and finished legs it already learned.
func (r *Relay) observe(id hash.Hash, x *xtxRecord) *crosschain.Observation {
	xt := &x.Signed.XTx
	o := crosschain.NewObservation(id, x.Signed)
	o.SigsOK = r.sigsOK(x)
	coord := r.chains[xt.Coordinator]
	if coord != nil {
		o.Coordinator = crosschain.ChainView{Reachable: true, Height: coord.height, Time: coord.time}
	}
	r.mu.Lock()
	if x.Dec != nil {
		o.Decision = crosschain.DecisionRead{Read: true, Found: true, Decision: *x.Dec}
	}
	done := slices.Clone(x.Done)
	r.mu.Unlock()
	for i, l := range xt.Legs {
		lc := r.chains[l.Chain]
		if lc == nil {
			continue
		}
		v := &o.Legs[i]
		v.Chain = crosschain.ChainView{Reachable: true, Height: lc.height, Time: lc.time}
		v.Done = i < len(done) && done[i]
		if coord != nil && l.Chain != coord.id {
			if p := r.pathOf[[2]string{l.Chain, coord.id}]; p != nil {
				v.ToCoordinator = p.provable()
			}
			if p := r.pathOf[[2]string{coord.id, l.Chain}]; p != nil {
				v.FromCoordinator = p.provable()
			}
		}
	}
	return o
}

// maxReadRounds bounds the read rounds of one advance: the engine asks for
// the decision, then the leg records and proofs, then has its steps.
const maxReadRounds = 4

// advance moves one XTx along: it makes the reads the crosschain engine asks
// for until the engine has its plan, records what it learned, and queues the
// steps due.
func (r *Relay) advance(ctx context.Context, id hash.Hash, x *xtxRecord) error {
	o := r.obs[id] // what the prefetch read already
	if o == nil {
		o = r.observe(id, x)
	}
	for range maxReadRounds {
		p := crosschain.PlanOf(o)
		if len(p.Reads) == 0 {
			r.act(id, x, o, &p)
			return nil
		}
		for _, rq := range p.Reads {
			res, err := r.read(ctx, r.chains[rq.Chain], rq.Height, rq.Key, rq.Prove)
			if err != nil {
				return err
			}
			if err := o.Fill(rq, res.Found, res.Value, res.Height, res.Proof); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("xtx %s: no plan after %d rounds of reads", id.Short(), maxReadRounds)
}

// act records what the plan learned of x and queues its steps. The relay
// steps in for a prepare only RetryAfter after it learned the XTx: the parties
// usually prepare their own legs, often in the same blocks.
func (r *Relay) act(id hash.Hash, x *xtxRecord, o *crosschain.Observation, p *crosschain.Plan) {
	r.mu.Lock()
	if o.Decision.Found && x.Dec == nil {
		d := o.Decision.Decision
		x.Dec = &d
	}
	for i := range o.Legs {
		if rec := o.Legs[i].Record; rec.Found && (rec.Record.Status == crosschain.Committed || rec.Record.Status == crosschain.Aborted) {
			x.Done[i] = true
		}
	}
	x.Status, x.Final = p.Status, p.Final
	learned := time.UnixMilli(x.Learned)
	r.mu.Unlock()
	if len(p.Waits) > 0 {
		r.recheck(id) // a light client catches up within a block or two
	}
	for _, s := range p.Steps {
		if s.Kind == crosschain.StepPrepare && r.now().Sub(learned) < r.cfg.RetryAfter.Duration {
			continue
		}
		if r.due(s.Key) {
			r.sendStep(r.chains[s.Chain], id, string(s.Kind), s.Key, s.Transform)
		}
	}
	if p.Final {
		r.triesMu.Lock()
		delete(r.tries, crosschain.StepKey(crosschain.StepDecide, id, -1))
		for i := range x.Signed.XTx.Legs {
			delete(r.tries, crosschain.StepKey(crosschain.StepPrepare, id, i))
			delete(r.tries, crosschain.StepKey(crosschain.StepFinish, id, i))
		}
		r.triesMu.Unlock()
	}
}

// sigsOK reports whether every party of x signed, checking once per XTx.
func (r *Relay) sigsOK(x *xtxRecord) bool {
	r.mu.Lock()
	v := x.sigs
	r.mu.Unlock()
	if v == 0 {
		v = -1
		if x.Signed.VerifySigs() == nil {
			v = 1
		}
		r.mu.Lock()
		x.sigs = v
		r.mu.Unlock()
	}
	return v > 0
}

// sendStep queues one step of XTx id for this pass's batch; key is its due() key.
func (r *Relay) sendStep(cs *chainState, id hash.Hash, kind, key string, tr transform.Transform) {
	r.enqueue(cs, outStep{kind: kind, key: key, id: id, tr: tr})
}
