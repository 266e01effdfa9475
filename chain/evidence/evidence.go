// Package evidence holds the transform that makes validators accountable for
// equivocation: two conflicting votes signed by one validator, submitted by any
// validator or relay, take the offender's power away on chain (it is jailed and
// its bond handled by the chain's validator.Accountability rules). The changed
// set is in the block's NextValidatorsHash, so other chains' light clients, which
// follow every set change, stop trusting the offender at the next height.
package evidence

import (
	"fmt"

	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/validator"
)

// TypeEquivocation is the transform type of equivocation evidence.
const TypeEquivocation = "validator/evidence"

// Register adds the evidence transform to reg.
func Register(reg *transform.Registry) {
	reg.MustRegister(TypeEquivocation, &Equivocation{})
}

// Equivocation proves that a validator signed two votes of one step for
// different blocks.
type Equivocation struct {
	VoteA consensus.Vote `cbor:"1,keyasint" json:"vote_a"`
	VoteB consensus.Vote `cbor:"2,keyasint" json:"vote_b"`
	// Asset names the chain's staking asset ("" when it has none), so the
	// transform can declare the offender's balance key without reading state.
	Asset string `cbor:"3,keyasint,omitempty" json:"asset,omitempty"`
}

// New returns the evidence transform for two conflicting votes on a chain whose
// staking asset is stakingAsset.
func New(a, b *consensus.Vote, stakingAsset string) *Equivocation {
	return &Equivocation{VoteA: *a, VoteB: *b, Asset: stakingAsset}
}

// Offender is the validator the evidence accuses.
func (t *Equivocation) Offender() crypto.Address { return t.VoteA.Validator }

// Keys implements transform.Transform.
func (t *Equivocation) Keys(*transform.Context) (r, w []string) {
	return validator.UnbondKeys(t.Offender(), t.Asset)
}

// Authorizations implements transform.Transform: the evidence speaks for itself;
// RBAC decides who may submit it (the validator and relayer roles by default).
func (t *Equivocation) Authorizations(*transform.Context) []crypto.Address { return nil }

// Verify implements transform.Transform.
func (t *Equivocation) Verify(ctx *transform.Context, st transform.State) error {
	var staking string
	if _, err := st.Get(validator.StakingAssetKey, &staking); err != nil {
		return err
	}
	if staking != t.Asset {
		return fmt.Errorf("%w: the staking asset is %q, not %q", transform.ErrInvalid, staking, t.Asset)
	}
	set, err := validator.Load(st)
	if err != nil {
		return err
	}
	off := t.Offender()
	i := set.Find(off)
	if i < 0 {
		return fmt.Errorf("%w: %s is not a validator (already jailed, or never was)", transform.ErrNotFound, off)
	}
	if err := consensus.VerifyVotes(ctx.ChainID, set[i].PubKey, &t.VoteA, &t.VoteB); err != nil {
		return fmt.Errorf("%w: %w", transform.ErrInvalid, err)
	}
	rules, err := validator.LoadAccountability(st)
	if err != nil {
		return err
	}
	h := t.VoteA.Height
	if h > ctx.Height {
		return fmt.Errorf("%w: votes of height %d, above this block's %d", transform.ErrInvalid, h, ctx.Height)
	}
	if ctx.Height-h > rules.MaxAge() {
		return fmt.Errorf("%w: offence at height %d is older than %d heights", transform.ErrInvalid, h, rules.MaxAge())
	}
	rec, found, err := validator.LoadJail(st, off)
	if err != nil {
		return err
	}
	if found && h <= rec.Offence {
		return fmt.Errorf("%w: %s was already punished for offences up to height %d", transform.ErrInvalid, off, rec.Offence)
	}
	return nil
}

// Apply implements transform.Transform.
func (t *Equivocation) Apply(ctx *transform.Context, st transform.State) error {
	rules, err := validator.LoadAccountability(st)
	if err != nil {
		return err
	}
	v := &t.VoteA
	reason := fmt.Sprintf("equivocation: two %s votes at height %d round %d", v.Type, v.Height, v.Round)
	_, err = validator.Jail(st, t.Offender(), t.Asset, v.Height, ctx.Height, reason, rules.SlashBps)
	return err
}
