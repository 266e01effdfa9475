package relay

import (
	"context"
	"errors"
	"time"

	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/crosschain"
)

// poll reads the chain's height and the relayer's committed nonce. A committed
// nonce that stays behind the local one for RetryAfter while the chain commits
// stuckBlocks blocks means transactions were lost (a slow chain that commits
// nothing is only slow), so the local nonce is re-read.
func (r *Relay) poll(ctx context.Context, cs *chainState) error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	st, err := cs.c.Status(ctx)
	if err != nil {
		return err
	}
	cs.height, cs.time = st.Height, st.Time
	r.m.Height.WithLabelValues(cs.id).Set(float64(st.Height))
	r.checkBatch(ctx, cs)
	ns, err := cs.c.Nonces(ctx, r.addr)
	if err != nil {
		return err
	}
	n := ns.Committed
	if n != cs.committed || !cs.nonceOK || n >= cs.nonce {
		cs.stuckSince, cs.stuckHeight = r.now(), cs.height
	}
	cs.committed = n
	cs.seen.Store(n)
	for k := range cs.sent {
		if k < n {
			delete(cs.sent, k)
		}
	}
	stuck := r.now().Sub(cs.stuckSince) > r.cfg.RetryAfter.Duration && cs.height >= cs.stuckHeight+stuckBlocks
	if cs.nonceOK && stuck && n < cs.nonce && r.resend(ctx, cs, n) {
		// Resent: the chain was only busy (a full mempool reaps others first),
		// or it lost some; either way the same nonces stay in flight.
		cs.stuckSince, cs.stuckHeight = r.now(), cs.height
		stuck = false
	}
	if cs.nonceOK && (n > cs.nonce || stuck) {
		log.Infow("nonce resync", "chain", cs.id, "local", cs.nonce, "committed", n)
		cs.nonceOK = false
		cs.epoch.Add(1)
	}
	if !cs.nonceOK {
		cs.nonce, cs.nonceOK, cs.stuckSince, cs.stuckHeight = n, true, r.now(), cs.height
		clear(cs.sent)
	}
	return nil
}

// batchRecheck is how often the relay re-reads whether a chain permits its
// batches: roles change rarely, and a stale answer only costs speed.
const batchRecheck = time.Minute

// checkBatch reads, at most every batchRecheck, whether the chain's RBAC policy
// lets the relayer send xchain/batch. Chains whose genesis predates it do not;
// the relay then sends each step in a transaction of its own, rather than
// batches that would all fail.
func (r *Relay) checkBatch(ctx context.Context, cs *chainState) {
	if r.cfg.BatchSteps <= 1 || r.now().Sub(cs.batchChecked) < batchRecheck {
		return
	}
	pol, err := rbac.Load(stateReader{ctx: ctx, c: cs.c})
	if err == nil {
		err = pol.Allow(crosschain.TypeBatch, []crypto.Address{r.addr})
		if err != nil && !errors.Is(err, transform.ErrUnauthorized) {
			return // could not read the policy: ask again next poll
		}
		if ok := err == nil; ok != cs.batchOK || cs.batchChecked.IsZero() {
			if !ok {
				log.Warnw("chain does not let this relayer send xchain/batch; sending one transaction per step (grant it to the relayer role, or set batch_steps = 1)", "chain", cs.id, "err", err)
			}
			cs.batchOK = ok
		}
		cs.batchChecked = r.now()
	}
}

// stateReader reads a chain's latest committed state over its gateway, for
// rbac.Load.
type stateReader struct {
	ctx context.Context
	c   Chain
}

// Get implements rbac.Reader.
func (s stateReader) Get(key string, dst any) (bool, error) {
	res, err := s.c.State(s.ctx, 0, key, false)
	if err != nil {
		return false, err
	}
	return res.Found, res.Decode(dst)
}

// resend submits again the relayer's transactions of nonces committed to
// cs.nonce-1, as they were signed. It reports false when it cannot: one of them
// is not kept, or a node refused one, and the nonce must be re-read.
func (r *Relay) resend(ctx context.Context, cs *chainState, committed uint64) bool {
	var txs []*tx.Tx
	for k := committed; k < cs.nonce; k++ {
		t := cs.sent[k]
		if t == nil {
			return false
		}
		txs = append(txs, t)
	}
	log.Infow("resending in-flight transactions", "chain", cs.id, "from", committed, "n", len(txs))
	for len(txs) > 0 {
		batch := txs[:min(len(txs), gateway.MaxBatchTxs)]
		txs = txs[len(batch):]
		res, err := cs.c.SubmitBatch(ctx, batch)
		if err != nil {
			return false
		}
		for _, e := range res {
			if e != nil && !errors.Is(e, client.ErrBusy) {
				return false
			}
		}
	}
	return true
}

// stuckBlocks is how many blocks a chain commits without any of the relayer's
// pending transactions before they count as lost.
const stuckBlocks = 3
