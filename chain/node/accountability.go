package node

import (
	"context"
	"crypto/rand"

	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/evidence"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/chain/validator"
)

// onEvidence logs what the machine found and, for two conflicting votes, has a
// validator submit the evidence as a transaction signed by its key, once per
// offender and height (loop goroutine only). The chain then jails the offender
// (chain/evidence).
func (n *Node) onEvidence(ctx context.Context, ev consensus.Evidence) {
	switch {
	case ev.ProposalA != nil:
		log.Warnw("equivocation: conflicting proposals", "validator", ev.ProposalA.Proposer, "height", ev.ProposalA.Height, "round", ev.ProposalA.Round)
		return
	case ev.VoteA == nil || ev.VoteB == nil:
		return
	}
	a := ev.VoteA
	log.Warnw("equivocation: conflicting votes", "validator", a.Validator, "height", a.Height, "round", a.Round, "type", a.Type.String())
	if !n.cfg.Validator || a.Validator == n.address {
		return
	}
	if n.reported == nil {
		n.reported = map[crypto.Address]uint64{}
	}
	if h, ok := n.reported[a.Validator]; ok && h >= a.Height {
		return
	}
	n.reported[a.Validator] = a.Height
	b := ev.VoteB
	go func() {
		id, err := n.submitEvidence(ctx, a, b)
		if err != nil {
			log.Warnw("submit equivocation evidence", "validator", a.Validator, "height", a.Height, "err", err)
			return
		}
		log.Infow("submitted equivocation evidence", "validator", a.Validator, "height", a.Height, "tx", id.Short())
	}()
}

// submitEvidence signs the evidence transaction with the node's key at its next
// nonce and submits it here.
func (n *Node) submitEvidence(ctx context.Context, a, b *consensus.Vote) (hash.Hash, error) {
	var staking string
	if _, err := (&stateGetter{n.state}).Get(validator.StakingAssetKey, &staking); err != nil {
		return hash.Hash{}, err
	}
	committed, err := n.nonces().Nonce(n.address)
	if err != nil {
		return hash.Hash{}, err
	}
	next, _ := n.pool.Next(n.address, committed)
	t, err := tx.New(n.cfg.Registry, n.cfg.ChainID, evidence.New(a, b, staking), tx.Signer{Key: n.cfg.Key.Public(), Nonce: next})
	if err != nil {
		return hash.Hash{}, err
	}
	if err := t.Sign(n.cfg.Key); err != nil {
		return hash.Hash{}, err
	}
	return n.Submit(ctx, t)
}

// equivocate sends, beside each vote of this validator for a block, a
// conflicting vote for nothing (and beside a nil vote, one for a made-up
// block): Config.TestEquivocate, for tests of accountability only.
func (n *Node) equivocate(ctx context.Context, m *consensus.Message) {
	if m.Vote == nil || m.Vote.Validator != n.address {
		return
	}
	v := *m.Vote
	if v.IsNil() {
		_, _ = rand.Read(v.BlockID[:])
	} else {
		v.BlockID = hash.Hash{}
	}
	sig, err := n.cfg.Key.Sign(v.SignBytes())
	if err != nil {
		return
	}
	v.Signature = sig
	log.Warnw("test equivocation: sending a conflicting vote", "height", v.Height, "round", v.Round, "type", v.Type.String())
	_ = n.cons.Publish(ctx, n.encodeMsg(&consensus.Message{Vote: &v}, nil))
}
