package node

import (
	"fmt"

	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/validator"
	"github.com/plugchain/plug/chain/valset"
)

// parentCert is the certificate of the last committed block with the commit
// votes for it that reached this node after its decision: what its next
// proposal carries on a chain that counts absent validators (chain/liveness).
// A decision needs only a quorum of votes, so the slowest validators' votes
// often come later; adding them keeps a slow but live validator counted.
// Loop goroutine only.
type parentCert struct {
	cert *consensus.Certificate
	set  valset.Set // the set that signed it
}

// reset starts over from the certificate of a newly committed block signed by set.
func (p *parentCert) reset(c consensus.Certificate, set valset.Set) {
	c.Votes = append([]consensus.Vote(nil), c.Votes...)
	p.cert, p.set = &c, set
}

// add takes a late commit vote for the block, of the certificate's round, from
// a validator not yet in it, once its signature verifies.
func (p *parentCert) add(chainID string, v *consensus.Vote) {
	c := p.cert
	if c == nil || v.Type != consensus.Commit || v.Height != c.Height || v.Round != c.Round || v.BlockID != c.BlockID || v.ChainID != chainID {
		return
	}
	for i := range c.Votes {
		if c.Votes[i].Validator == v.Validator {
			return
		}
	}
	i := p.set.Find(v.Validator)
	if i < 0 || crypto.Verify(p.set[i].PubKey, v.SignBytes(), v.Signature) != nil {
		return
	}
	c.Votes = append(c.Votes, *v)
}

// loadParentCert restores the certificate of the last committed block after a restart.
func (n *Node) loadParentCert() error {
	h := n.store.Height()
	if h == 0 {
		return nil
	}
	c, err := n.store.Certificate(h)
	if err != nil {
		return fmt.Errorf("certificate of block %d: %w", h, err)
	}
	// The set that signed block h is the one in the state after block h-1.
	raw, _, err := n.state.GetAt(versionOf(h-1), validator.SetKey)
	if err != nil {
		return fmt.Errorf("validator set that signed block %d: %w", h, err)
	}
	var set valset.Set
	if err := encoding.UnmarshalLax(raw, &set); err != nil {
		return fmt.Errorf("validator set that signed block %d: %w", h, err)
	}
	n.parent.reset(*c, set)
	return nil
}

// countsAbsence reports whether the chain runs the absence rule, whose blocks
// carry their parent's certificate.
func (n *Node) countsAbsence() bool {
	rules, err := validator.LoadAccountability(&stateGetter{n.state})
	return err == nil && rules.AbsentHeights > 0
}
