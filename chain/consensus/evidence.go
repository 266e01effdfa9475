package consensus

import (
	"errors"
	"fmt"

	"github.com/plugchain/plug/chain/crypto"
)

// ErrBadEvidence: two votes that do not prove an equivocation.
var ErrBadEvidence = errors.New("bad equivocation evidence")

// VerifyVotes checks that a and b prove an equivocation on chainID by the holder
// of key: both signed by it, of the same type, height and round, for different
// blocks (one may be nil). Honest validators never sign such a pair: the
// machine persists each vote before sending it and re-sends rather than
// re-signs after a restart.
func VerifyVotes(chainID string, key crypto.PublicKey, a, b *Vote) error {
	if a == nil || b == nil {
		return fmt.Errorf("%w: two votes are needed", ErrBadEvidence)
	}
	switch {
	case a.ChainID != chainID || b.ChainID != chainID:
		return fmt.Errorf("%w: votes of chain %q and %q, not %q", ErrBadEvidence, a.ChainID, b.ChainID, chainID)
	case a.Type != PreCommit && a.Type != Commit:
		return fmt.Errorf("%w: vote type %d", ErrBadEvidence, a.Type)
	case a.Type != b.Type || a.Height != b.Height || a.Round != b.Round:
		return fmt.Errorf("%w: votes of different steps (%s %d/%d, %s %d/%d)", ErrBadEvidence, a.Type, a.Height, a.Round, b.Type, b.Height, b.Round)
	case a.Validator != b.Validator:
		return fmt.Errorf("%w: votes of two validators", ErrBadEvidence)
	case a.BlockID == b.BlockID:
		return fmt.Errorf("%w: both votes are for the same block", ErrBadEvidence)
	case key.Address() != a.Validator:
		return fmt.Errorf("%w: key is not %s's", ErrBadEvidence, a.Validator)
	}
	for i, v := range []*Vote{a, b} {
		if err := crypto.Verify(key, v.SignBytes(), v.Signature); err != nil {
			return fmt.Errorf("%w: vote %d: %w: %v", ErrBadEvidence, i+1, ErrBadSignature, err)
		}
	}
	return nil
}
