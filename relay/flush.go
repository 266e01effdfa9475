package relay

import (
	"context"
	"errors"
	"fmt"

	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/crosschain"
)

// outStep is a transaction the relay sends to a chain at the end of a pass.
type outStep struct {
	kind string    // update, prepare, decide or finish
	key  string    // its due() key, released if it is not sent; "" for updates
	id   hash.Hash // its XTx, advanced again next pass if it is not sent
	// path is the light client an update advances: if the update is not sent,
	// the path's sent height falls back, since later updates and the proofs
	// taken at their heights cannot apply without it.
	path *pathState
	tr   transform.Transform
}

// enqueue adds a transaction for cs to this pass's batch.
func (r *Relay) enqueue(cs *chainState, s outStep) {
	cs.mu.Lock()
	cs.outbox = append(cs.outbox, s)
	cs.mu.Unlock()
}

// flush signs this pass's transactions for cs with consecutive nonces and sends
// them in batches (POST /v1/txs) without waiting for commits: one request carries
// the header updates and the steps that use them, updates first, the steps
// packed into xchain/batch transactions (pack). Transactions that do not fit
// under MaxInflight, or that the node refuses, have their steps released for
// the next pass. A refused nonce makes the next flush re-read it from the
// chain; a gap left by a refused transaction is healed by poll's stuck-nonce
// check.
func (r *Relay) flush(ctx context.Context, cs *chainState) error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := cs.outbox
	cs.outbox = nil
	if len(out) == 0 {
		return nil
	}
	release := func(us []unit) {
		r.triesMu.Lock()
		for _, u := range us {
			for _, s := range u.steps {
				if s.key != "" {
					delete(r.tries, s.key)
				}
			}
		}
		r.triesMu.Unlock()
		for _, u := range us {
			for _, s := range u.steps {
				if s.key != "" {
					r.recheck(s.id)
				}
				if up, ok := s.tr.(*crosschain.LCUpdate); ok && s.path != nil && s.path.sent >= up.Header.Height {
					s.path.sent = max(s.path.client, up.Header.Height-1)
				}
			}
		}
	}
	units := r.pack(cs, out)
	if !cs.nonceOK {
		// The next nonce counts what is still pending from before (a restart):
		// those transactions are not sent again under other nonces.
		ns, err := cs.c.Nonces(ctx, r.addr)
		if err != nil {
			release(units)
			return err
		}
		cs.nonce, cs.nonceOK, cs.committed = ns.Next, true, ns.Committed
	}
	room := int(max(0, int64(r.cfg.MaxInflight)-int64(cs.nonce-cs.committed)))
	if room < len(units) {
		release(units[room:])
		units = units[:room]
	}
	var errs []error
	for len(units) > 0 {
		batch := units[:min(len(units), gateway.MaxBatchTxs)]
		units = units[len(batch):]
		txs := make([]*tx.Tx, len(batch))
		for i, u := range batch {
			t := tx.FromPayload(cs.id, u.typ, u.payload, tx.Signer{Key: r.key.Public(), Nonce: cs.nonce + uint64(i)})
			if err := t.Sign(r.key); err != nil {
				release(batch)
				release(units)
				return errors.Join(append(errs, fmt.Errorf("sign %s: %w", u.typ, err))...)
			}
			txs[i] = t
		}
		res, err := cs.c.SubmitBatch(ctx, txs)
		if err != nil {
			// Nothing is known to be admitted: start again from the chain's nonce.
			r.m.SubmitErrors.WithLabelValues(cs.id).Inc()
			cs.nonceOK = false
			cs.epoch.Add(1)
			release(batch)
			release(units)
			return errors.Join(append(errs, err)...)
		}
		base := cs.nonce
		cs.nonce += uint64(len(batch))
		if cs.sent == nil {
			cs.sent = map[uint64]*tx.Tx{}
		}
		for i, t := range txs {
			cs.sent[base+uint64(i)] = t
			s := batch[i].steps[0]
			if u, ok := s.tr.(*crosschain.LCUpdate); ok && res[i] == nil && s.path != nil && u.Header.Height == s.path.sent {
				p := s.path
				p.sentNonce, p.sentEpoch, p.sentAdmitted = base+uint64(i), cs.epoch.Load(), true
			}
		}
		r.triesMu.Lock()
		for i, e := range res {
			if e != nil {
				continue
			}
			for _, s := range batch[i].steps {
				if t, ok := r.tries[s.key]; ok && s.key != "" {
					t.cs, t.nonce, t.epoch, t.sent = cs, base+uint64(i), cs.epoch.Load(), true
					r.tries[s.key] = t
				}
			}
		}
		r.triesMu.Unlock()
		for i, e := range res {
			if e == nil {
				for _, s := range batch[i].steps {
					r.countStep(s)
				}
				if batch[i].typ == crosschain.TypeBatch {
					r.m.Batches.WithLabelValues(cs.id).Inc()
				}
				continue
			}
			r.m.SubmitErrors.WithLabelValues(cs.id).Inc()
			release(batch[i : i+1])
			if (errors.Is(e, client.ErrNonceConflict) || errors.Is(e, client.ErrNonceGap)) && cs.nonceOK {
				cs.nonceOK = false
				cs.epoch.Add(1)
			}
			errs = append(errs, fmt.Errorf("%s: %w", batch[i].typ, e))
		}
		if !cs.nonceOK {
			release(units)
			break
		}
	}
	return errors.Join(errs...)
}

// unit is one transaction of a flush: a header update, a step alone, or an
// xchain/batch of steps.
type unit struct {
	steps   []outStep
	typ     string
	payload []byte
}

// pack turns this pass's steps for cs into transactions: each header update
// alone, each run of crosschain steps into xchain/batch transactions of up to
// BatchSteps steps that fit under the transaction size limit. A step that cannot
// be encoded is dropped and released (it is retried, and logged, next pass).
func (r *Relay) pack(cs *chainState, out []outStep) []unit {
	var units []unit
	one := func(s outStep) {
		name, err := r.reg.Name(s.tr)
		var payload []byte
		if err == nil {
			payload, err = encoding.Marshal(s.tr)
		}
		if err != nil {
			log.Warnw("encode step", "chain", cs.id, "kind", s.kind, "err", err)
			r.triesMu.Lock()
			delete(r.tries, s.key)
			r.triesMu.Unlock()
			r.recheck(s.id)
			return
		}
		units = append(units, unit{steps: []outStep{s}, typ: name, payload: payload})
	}
	var batch func(ss []outStep)
	batch = func(ss []outStep) {
		if len(ss) == 1 {
			one(ss[0])
			return
		}
		b := &crosschain.Batch{Steps: make([]crosschain.Step, len(ss))}
		for i, s := range ss {
			b.Steps[i] = crosschain.StepOf(s.tr)
		}
		payload, err := encoding.Marshal(b)
		if err != nil || len(payload) > batchPayloadLimit {
			batch(ss[:len(ss)/2])
			batch(ss[len(ss)/2:])
			return
		}
		units = append(units, unit{steps: ss, typ: crosschain.TypeBatch, payload: payload})
	}
	for i := 0; i < len(out); {
		j := i
		for j < len(out) && j-i < r.cfg.BatchSteps && cs.batchOK {
			if st := crosschain.StepOf(out[j].tr); !st.Valid() {
				break
			}
			j++
		}
		if j == i {
			one(out[i])
			i++
			continue
		}
		batch(out[i:j])
		i = j
	}
	return units
}

// batchPayloadLimit leaves room under tx.MaxTxSize for the transaction's
// envelope: its type, signer and signature.
const batchPayloadLimit = tx.MaxTxSize - 1024

// countStep counts a transaction a node admitted: a header update per path, a
// crosschain step per kind.
func (r *Relay) countStep(s outStep) {
	if s.path != nil {
		r.m.HeaderUpdates.WithLabelValues(s.path.src.id, s.path.dst.id).Inc()
		return
	}
	r.m.Proofs.WithLabelValues(s.kind).Inc()
}
