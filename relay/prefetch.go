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
// pass cost about four HTTP round trips of its own. It asks the engine what
// each XTx needs, in two rounds: the first also takes what an undecided XTx
// needs if its decision is still absent (the usual case), the second what a
// decision found in the first makes due. The observations it filled are kept
// in r.obs, where advance goes on from them.
func (r *Relay) prefetch(ctx context.Context, ids []hash.Hash) {
	r.pre = map[readKey]*client.StateResult{}
	r.obs = make(map[hash.Hash]*crosschain.Observation, len(ids))
	obs := make([]*crosschain.Observation, 0, len(ids))
	for _, id := range ids {
		r.mu.Lock()
		x := r.xtxs[id]
		r.mu.Unlock()
		o := r.observe(id, x)
		r.obs[id] = o
		obs = append(obs, o)
	}
	for round := range 2 {
		var keys []readKey
		for _, o := range obs {
			reads := crosschain.PlanOf(o).Reads
			if round == 0 && !o.Decision.Read && o.Coordinator.Reachable {
				absent := *o
				absent.Decision = crosschain.DecisionRead{Read: true}
				reads = append(reads, crosschain.PlanOf(&absent).Reads...)
			}
			for _, rq := range reads {
				keys = append(keys, readKey{rq.Chain, rq.Height, rq.Key, rq.Prove})
			}
		}
		r.fetch(ctx, keys)
		for _, o := range obs {
			for _, rq := range crosschain.PlanOf(o).Reads {
				if res := r.pre[readKey{rq.Chain, rq.Height, rq.Key, rq.Prove}]; res != nil {
					o.Fill(rq, res.Found, res.Value, res.Height, res.Proof) // a bad value is advance's to report
				}
			}
		}
	}
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
