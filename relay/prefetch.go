package relay

import (
	"context"
	"sync"

	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/crosschain"
)

// readKey names one state read: key on chain at height (0: the latest),
// proven or not.
type readKey struct {
	chain  string
	height uint64
	key    string
	prove  bool
}

// read answers a state read of advance from the pass's prefetched reads, or
// asks the chain when the prefetch did not cover it.
func (r *Relay) read(ctx context.Context, cs *chainState, height uint64, key string, prove bool) (*client.StateResult, error) {
	if res, ok := r.pre[readKey{cs.id, height, key, prove}]; ok {
		return res, nil
	}
	return cs.c.State(ctx, height, key, prove)
}

// prefetch reads, in batches (POST /v1/states: one request per chain, height
// and proving, up to gateway.MaxStateKeys keys), what advance will read for
// ids, and keeps the answers in r.pre for this pass. Before it, every XTx of a
// pass cost about four HTTP round trips of its own. It runs in two rounds,
// because an XTx that was pending may turn out decided, and what it needs
// then depends on the decision's height.
func (r *Relay) prefetch(ctx context.Context, ids []hash.Hash) {
	r.pre = map[readKey]*client.StateResult{}
	var first []readKey
	r.mu.Lock()
	for _, id := range ids {
		x := r.xtxs[id]
		if x.Phase == PhasePending {
			first = append(first, r.decideReads(id, x)...)
		} else if x.Dec != nil {
			first = append(first, r.finishReads(id, x, x.Dec.Height)...)
		}
	}
	r.mu.Unlock()
	r.fetch(ctx, first)

	var second []readKey
	r.mu.Lock()
	for _, id := range ids {
		x := r.xtxs[id]
		coord := r.chains[x.Signed.XTx.Coordinator]
		if x.Phase != PhasePending || coord == nil {
			continue
		}
		res := r.pre[readKey{coord.id, 0, crosschain.DecisionKey(id), false}]
		var dec crosschain.Decision
		if res == nil || !res.Found || res.Decode(&dec) != nil {
			continue
		}
		second = append(second, r.finishReads(id, x, dec.Height)...)
	}
	r.mu.Unlock()
	r.fetch(ctx, second)
}

// decideReads mirrors the reads of advance and decide for a pending XTx.
func (r *Relay) decideReads(id hash.Hash, x *xtxRecord) []readKey {
	xt := &x.Signed.XTx
	coord := r.chains[xt.Coordinator]
	if coord == nil {
		return nil
	}
	out := []readKey{{coord.id, 0, crosschain.DecisionKey(id), false}}
	if coord.time > xt.Deadline {
		return out
	}
	for i, l := range xt.Legs {
		lc := r.chains[l.Chain]
		if lc == nil {
			continue
		}
		var h uint64
		if l.Chain != coord.id {
			p := r.pathOf[[2]string{l.Chain, coord.id}]
			if p == nil || p.provable() == 0 {
				continue
			}
			h = min(p.provable(), lc.height)
		}
		out = append(out, readKey{lc.id, h, crosschain.LegKey(id, i), h != 0})
	}
	return out
}

// finishReads mirrors the reads of finish for an XTx decided at height decided.
func (r *Relay) finishReads(id hash.Hash, x *xtxRecord, decided uint64) []readKey {
	xt := &x.Signed.XTx
	coord := r.chains[xt.Coordinator]
	if coord == nil {
		return nil
	}
	var out []readKey
	for i, l := range xt.Legs {
		lc := r.chains[l.Chain]
		if x.Done[i] || lc == nil {
			continue
		}
		out = append(out, readKey{lc.id, 0, crosschain.LegKey(id, i), false})
		if l.Chain != coord.id {
			if p := r.pathOf[[2]string{coord.id, l.Chain}]; p != nil && p.provable() >= decided {
				out = append(out, readKey{coord.id, min(p.provable(), coord.height), crosschain.DecisionKey(id), true})
			}
		}
	}
	return out
}

// fetch reads keys in batches, cfg.Workers at once, into r.pre. A batch that
// fails leaves its keys to advance's own reads.
func (r *Relay) fetch(ctx context.Context, keys []readKey) {
	type group struct {
		chain  string
		height uint64
		prove  bool
	}
	groups := map[group][]string{}
	seen := map[readKey]bool{}
	for _, k := range keys {
		if _, done := r.pre[k]; done || seen[k] {
			continue
		}
		seen[k] = true
		g := group{k.chain, k.height, k.prove}
		groups[g] = append(groups[g], k.key)
	}
	type batch struct {
		g    group
		keys []string
	}
	var batches []batch
	for g, ks := range groups {
		for lo := 0; lo < len(ks); lo += gateway.MaxStateKeys {
			batches = append(batches, batch{g, ks[lo:min(lo+gateway.MaxStateKeys, len(ks))]})
		}
	}
	var mu sync.Mutex
	work := make(chan batch)
	var wg sync.WaitGroup
	for range min(r.cfg.Workers, len(batches)) {
		wg.Go(func() {
			for b := range work {
				r.m.StateBatches.WithLabelValues(b.g.chain).Inc()
				res, err := r.chains[b.g.chain].c.States(ctx, b.g.height, b.keys, b.g.prove)
				if err != nil {
					log.Debugw("prefetch states", "chain", b.g.chain, "height", b.g.height, "keys", len(b.keys), "err", err)
					continue
				}
				mu.Lock()
				for i, k := range b.keys {
					r.pre[readKey{b.g.chain, b.g.height, k, b.g.prove}] = res[i]
				}
				mu.Unlock()
			}
		})
	}
	for _, b := range batches {
		work <- b
	}
	close(work)
	wg.Wait()
}
