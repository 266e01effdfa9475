package relay

import (
	"context"
	"fmt"

	"github.com/plugchain/plug/chain/validator"
	"github.com/plugchain/plug/chain/valset"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/spv"
)

// updateClient sends the headers dest's light client of source lacks: at once
// when busy (an unfinished XTx needs a proof over the path), else at most every
// ClientRefresh. Updating idle clients at every block would never let two
// chains rest: each update makes a block on its chain, whose header the other
// chain's client then lacks.
func (r *Relay) updateClient(ctx context.Context, p *pathState, busy bool) error {
	res, err := p.dst.c.State(ctx, 0, crosschain.LCKey(p.src.id), false)
	if err != nil {
		return err
	}
	if !res.Found {
		return nil // no client: an admin must lc/create it first
	}
	var c spv.ClientState
	if err := res.Decode(&c); err != nil {
		return err
	}
	if c.Height > p.client {
		p.progress = r.now()
	}
	p.client = c.Height
	r.m.Lag.WithLabelValues(p.src.id, p.dst.id).Set(float64(p.src.height) - float64(c.Height))
	if c.Frozen {
		return fmt.Errorf("client is frozen")
	}
	// An update still in flight (its nonce not committed, no resync since) is
	// only slow; one that executed without the client reaching it, or was
	// never admitted, is sent again.
	inFlight := p.sentAdmitted && p.sentEpoch == p.dst.epoch.Load() && p.dst.seen.Load() <= p.sentNonce
	if p.sent < p.client || (p.sent > p.client && !inFlight && r.now().Sub(p.progress) > r.cfg.RetryAfter.Duration) {
		p.sent, p.progress, p.sentAdmitted = p.client, r.now(), false
	}
	if p.sent >= p.src.height || (!busy && r.now().Sub(p.refreshed) < r.cfg.ClientRefresh.Duration) {
		return nil
	}
	p.refreshed = r.now()
	for h := p.sent + 1; h <= p.src.height && h <= p.sent+maxUpdatesPerPass; h++ {
		u, err := r.headerUpdate(ctx, p.src, h)
		if err != nil {
			return err
		}
		r.enqueue(p.dst, outStep{kind: "update", path: p, tr: u})
		p.sent = h
	}
	return nil
}

// busyPaths returns the paths (source, dest) over which an unfinished XTx still
// needs a proof: a leg's record to the coordinator, the decision back to a leg.
func (r *Relay) busyPaths() map[[2]string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	busy := map[[2]string]bool{}
	for _, x := range r.xtxs {
		if x.Final {
			continue
		}
		coord := x.Signed.XTx.Coordinator
		for _, l := range x.Signed.XTx.Legs {
			if l.Chain != coord {
				busy[[2]string{l.Chain, coord}] = true
				busy[[2]string{coord, l.Chain}] = true
			}
		}
	}
	return busy
}

// headerUpdate builds the lc/update for height h of cs: its header, its commit
// certificate and the set that signs h+1 (state key "validators" at h).
func (r *Relay) headerUpdate(ctx context.Context, cs *chainState, h uint64) (*crosschain.LCUpdate, error) {
	hr, err := cs.c.Header(ctx, h)
	if err != nil {
		return nil, err
	}
	vs, err := cs.c.State(ctx, h, validator.SetKey, false)
	if err != nil {
		return nil, err
	}
	var set valset.Set
	if err := vs.Decode(&set); err != nil {
		return nil, err
	}
	return &crosschain.LCUpdate{ChainID: cs.id, Header: *hr.Header, Cert: *hr.Certificate, NextSet: set}, nil
}
