package node

import (
	"context"
	"fmt"
	"time"

	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/valset"
)

// loop is the only goroutine that touches the consensus machine.
func (n *Node) loop(ctx context.Context, wal *consensus.State) {
	defer close(n.done)
	// A validator restarting mid-height resumes from its write-ahead state, so it
	// re-sends what it signed instead of signing anything new that could conflict.
	if st := wal; st != nil && st.Height == n.height()+1 {
		n.machine.Restore(st, n.currentSet(), n.clock())
	} else {
		n.machine.NewHeight(n.height()+1, n.currentSet(), n.clock())
	}
	n.handle(ctx)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var lastPeers time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-n.inbox:
			if msg.Vote != nil {
				n.parent.add(n.cfg.ChainID, msg.Vote)
			}
			if err := n.machine.Receive(msg); err != nil {
				log.Debugw("consensus message refused", "err", err)
			}
		case now := <-tick.C:
			n.machine.Tick(n.clock())
			if now.Sub(lastPeers) >= time.Second {
				lastPeers = now
				n.cfg.Metrics.SetPeers(len(n.host.Peers()))
				n.cfg.Metrics.SetMempool(n.pool.Len())
			}
		case h := <-n.behind:
			n.sync(ctx, h)
			if n.height() >= n.best.Load() {
				n.best.Store(0)
			}
			n.machine.NewHeight(n.height()+1, n.currentSet(), n.clock())
		}
		n.handle(ctx)
	}
}

func (n *Node) currentSet() valset.Set {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.set
}

// handle carries out the machine's Ready: persist, send, commit.
func (n *Node) handle(ctx context.Context) {
	for {
		rd := n.machine.Ready()
		if rd.Persist != nil {
			if err := n.store.SaveConsensus(rd.Persist); err != nil {
				// Sending votes that are not on disk could equivocate after a restart.
				log.Errorw("persist consensus state; not sending", "err", err)
				return
			}
			n.mu.Lock()
			n.round = rd.Persist.Round
			n.mu.Unlock()
			n.cfg.Metrics.SetRound(rd.Persist.Round)
		}
		for i := range rd.Messages {
			if err := n.cons.Publish(ctx, n.encodeMsg(&rd.Messages[i], n.lastBlock)); err != nil {
				log.Debugw("publish consensus message", "err", err)
			}
			if n.cfg.TestEquivocate {
				n.equivocate(ctx, &rd.Messages[i])
			}
		}
		for _, d := range rd.Decisions {
			if err := n.commit(ctx, d); err != nil {
				log.Errorw("commit decided block", "height", d.Height, "err", err)
				return
			}
			n.machine.NewHeight(d.Height+1, n.currentSet(), n.clock())
		}
		for _, ev := range rd.Evidence {
			n.onEvidence(ctx, ev)
		}
		if rd.Behind > 0 {
			n.best.Store(max(n.best.Load(), rd.Behind))
			select {
			case n.behind <- rd.Behind:
			default:
			}
		}
		if rd.Persist == nil && len(rd.Messages) == 0 && len(rd.Decisions) == 0 {
			return
		}
	}
}

// commit makes a decided block durable: block store first, then state, so that a
// crash in between is repaired by re-executing the stored block on start.
func (n *Node) commit(ctx context.Context, d consensus.Decision) error {
	ex := n.app.outcome(d.Cert.BlockID)
	if ex == nil {
		if _, err := n.app.Validate(d.Height, d.Block); err != nil {
			return fmt.Errorf("decided block fails validation: %w", err)
		}
		ex = n.app.outcome(d.Cert.BlockID)
	}
	if err := n.store.SaveBlock(ex.block, &d.Cert, ex.out.Receipts); err != nil {
		return err
	}
	if err := n.state.Commit(ex.out.Batch); err != nil {
		return err
	}
	n.indexLater(ex.block.Header.Height)
	hdr := ex.block.Header
	n.parent.reset(d.Cert, n.currentSet())
	n.mu.Lock()
	prevSet := n.set
	n.header, n.set = &hdr, ex.out.NextValidators
	n.mu.Unlock()
	n.followSet(prevSet, ex.out.NextValidators)
	n.app.reset()
	n.lastBlock = ex.block
	n.pool.Update(hdr.Height, ex.block.Txs, n.nonces())
	// Followers learn of the block from its proposer only: one copy of each block on
	// the topic rather than one per validator.
	if n.blocks != nil && hdr.Proposer == n.address {
		_ = n.blocks.Publish(ctx, n.encodeMsg(&consensus.Message{Decided: &consensus.Decided{Cert: d.Cert, Block: d.Block}}, ex.block))
	}
	n.publishEvents(ex.block, ex.out.Receipts)
	n.cfg.Metrics.BlockCommitted(hdr.Height, d.Cert.Round, ex.out.Receipts, time.Duration(max(0, n.clock()-hdr.Time))*time.Millisecond)
	n.cfg.Metrics.SetMempool(n.pool.Len())
	if n.cfg.OnCommit != nil {
		n.cfg.OnCommit(ex.block, ex.out.Receipts)
	}
	log.Debugw("committed", "height", hdr.Height, "txs", len(ex.block.Txs), "root", hdr.StateRoot.Short())
	return nil
}
