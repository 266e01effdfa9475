package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/mempool"
	"github.com/plugchain/plug/chain/p2p"
	"github.com/plugchain/plug/chain/tx"
)

// readTopic feeds validated consensus messages to the loop.
func (n *Node) readTopic(ctx context.Context, t *p2p.Topic) {
	for {
		m, err := t.Next(ctx)
		if err != nil {
			return
		}
		msg, ok := n.decoded.take(m.ID)
		if !ok {
			var err error
			if msg, err = n.openMsg(m.From, m.Data); err != nil {
				continue
			}
		}
		select {
		case n.inbox <- msg:
		case <-ctx.Done():
			return
		}
	}
}

// drainTxs consumes the transaction topic: validation already added them to the
// mempool, so reading only keeps the subscription flowing.
func (n *Node) drainTxs(ctx context.Context) {
	for {
		if _, err := n.txs.Next(ctx); err != nil {
			return
		}
	}
}

// validateConsensus drops malformed consensus messages at the edge.
func (n *Node) validateConsensus(from peer.ID, data []byte) error {
	if from == n.host.ID() {
		// Pubsub validates what this node publishes too; the machine made it,
		// and the node never reads its own messages back.
		return nil
	}
	msg, err := n.openMsg(from, data)
	if err == nil {
		n.decoded.put(sha256.Sum256(data), msg)
	}
	return err
}

// validateDecided accepts a committed block only with a certificate valid for the
// current set (or one ahead, which sync checks).
func (n *Node) validateDecided(from peer.ID, data []byte) error {
	if from == n.host.ID() {
		return nil // this node's own commit
	}
	msg, c, err := decodeMsg(data)
	if err != nil {
		return err
	}
	if msg.Decided == nil {
		return fmt.Errorf("%w: not a decided block", consensus.ErrBadMessage)
	}
	if msg.Decided.Cert.Height != n.height()+1 {
		return fmt.Errorf("stale or future block %d: %w", msg.Decided.Cert.Height, p2p.ErrIgnore)
	}
	n.mu.RLock()
	set := n.set
	n.mu.RUnlock()
	if err := msg.Decided.Cert.Verify(n.cfg.ChainID, set); err != nil {
		return err
	}
	if c != nil {
		// Rebuilt only now: validators receive every decided block they already
		// committed, and the height check above drops those for nothing.
		if msg.Decided.Block, err = n.rebuild(from, c); err != nil {
			return err
		}
	}
	n.decoded.put(sha256.Sum256(data), msg)
	return nil
}

// validateTx admits a gossiped batch of transactions into the mempool, verifying
// the signatures of those not already pending in one batch over all cores. A batch
// holding a malformed or badly signed transaction is rejected whole: an honest
// node only forwards transactions it verified, so the sender's score should fall.
func (n *Node) validateTx(_ peer.ID, data []byte) error {
	var raws [][]byte
	if err := encoding.Unmarshal(data, &raws); err != nil {
		return fmt.Errorf("transaction batch: %w", err)
	}
	if len(raws) > MaxTxBatch {
		return fmt.Errorf("transaction batch of %d, limit %d", len(raws), MaxTxBatch)
	}
	var fresh []*tx.Tx
	for i, raw := range raws {
		t, err := tx.Decode(raw)
		if err != nil {
			return fmt.Errorf("transaction %d of batch: %w", i, err)
		}
		if id, err := t.ID(); err == nil && n.pool.Has(id) {
			continue
		}
		// Not exec.Admit: the node that answered the client ran it, and a
		// payload a faulty peer slips in is dropped, with the executor's
		// reason, when a proposer meets it; decoding every relayed batch
		// again on every peer costs a DvP stream a tenth of its rate.
		fresh = append(fresh, t)
	}
	full := false
	for i, sig := range tx.VerifyProofs(fresh) {
		if sig != nil {
			return fmt.Errorf("transaction %d of batch: %w", i, sig)
		}
		if _, err := n.pool.Add(fresh[i], nil, n.nonces()); errors.Is(err, mempool.ErrFull) {
			full = true
		}
	}
	if full {
		return fmt.Errorf("mempool full: %w", p2p.ErrIgnore)
	}
	return nil
}

// blockLimit is how many transactions this node proposes at most: MaxBlockTxs,
// or fewer when their measured execution cost would outlast the stagger.
func (n *Node) blockLimit() int {
	st := n.cfg.Timeouts.Stagger
	if n.cfg.Timeouts == (consensus.Timeouts{}) {
		st = consensus.DefaultTimeouts().Stagger
	}
	return n.budget.limit(time.Duration(st)*time.Millisecond, n.cfg.MaxBlockTxs)
}

// MaxTxBatch bounds the transactions of one gossip message.
const MaxTxBatch = 1024

// gossipTxs publishes admitted transactions in batches, so that a burst of
// submissions costs a few gossip messages and batched signature checks at every
// peer rather than one of each per transaction.
func (n *Node) gossipTxs(ctx context.Context) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var batch [][]byte
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := n.txs.Publish(ctx, encoding.MustMarshal(batch)); err != nil {
			log.Debugw("gossip transactions", "n", len(batch), "err", err)
		}
		batch = nil
	}
	for {
		select {
		case <-ctx.Done():
			return
		case raw := <-n.outTxs:
			batch = append(batch, raw)
			if len(batch) >= MaxTxBatch {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}
