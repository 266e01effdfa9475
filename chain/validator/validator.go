// Package validator holds the built-in transforms that change the chain's validator
// set (chain/valset): stake, unstake and transfer power, and the state keys and
// models they keep it under.
//
// Power is bonded stake of the chain's staking asset: staking moves balance into a
// bond, unstaking moves it back, so the staking asset stays conserved (balances +
// bonds = supply). A change made in block h is in the state after h, so it is in the
// NextValidatorsHash of header h and the set that votes on block h+1.
package validator

import (
	"fmt"
	"math"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/valset"
)

// State keys.
const (
	// SetKey holds the validator set.
	SetKey = "validators"
	// StakingAssetKey holds the name of the asset that is bonded for power.
	StakingAssetKey = "params/staking_asset"
)

// Transform type names.
const (
	TypeStake         = "validator/stake"
	TypeUnstake       = "validator/unstake"
	TypeTransferPower = "validator/transfer-power"
)

// Role is the RBAC role whose members may stake, unstake and transfer power
// (genesis.Default defines it with the genesis validators as members).
// Receiving power makes the receiver a member, on chains that have the role.
const Role = "validator"

// BondKey is where addr's bonded stake is stored.
func BondKey(addr crypto.Address) string { return "bond/" + addr.String() }

// Getter reads state values; transform.State and the executor's views satisfy it.
type Getter interface {
	Get(key string, dst any) (bool, error)
}

// Load reads the validator set.
func Load(st Getter) (valset.Set, error) {
	var s valset.Set
	if _, err := st.Get(SetKey, &s); err != nil {
		return nil, fmt.Errorf("load validator set: %w", err)
	}
	return s, nil
}

// AddModels registers the validator models.
func AddModels(ms *transform.Models) {
	ms.MustAdd(transform.Model{Name: "validators", Prefix: SetKey, Default: func() any { return valset.Set(nil) },
		Validate: func(v any) error {
			s, ok := v.(valset.Set)
			if !ok {
				return fmt.Errorf("want valset.Set, got %T", v)
			}
			return s.Check()
		}})
	ms.MustAdd(transform.Model{Name: "bond", Prefix: "bond/", Default: func() any { return uint64(0) }})
	ms.MustAdd(transform.Model{Name: "params", Prefix: "params/"})
	ms.MustAdd(transform.Model{Name: "jail", Prefix: "jail/", Default: func() any { return JailRecord{} }})
}

// Register adds the validator transforms to reg.
func Register(reg *transform.Registry) {
	reg.MustRegister(TypeStake, &Stake{})
	reg.MustRegister(TypeUnstake, &Unstake{})
	reg.MustRegister(TypeTransferPower, &TransferPower{})
	reg.MustRegister(TypeUnjail, &Unjail{})
}

func stakingAsset(st transform.State) (string, error) {
	var a string
	found, err := st.Get(StakingAssetKey, &a)
	if err != nil {
		return "", err
	}
	if !found || a == "" {
		return "", fmt.Errorf("%w: this chain has no staking asset", transform.ErrInvalid)
	}
	return a, nil
}

// adjust adds delta (which may be negative) to addr's power and bond, keeping the set
// valid; key is needed only when addr joins the set.
func adjust(st transform.State, addr crypto.Address, key crypto.PublicKey, delta int64) error {
	s, err := Load(st)
	if err != nil {
		return err
	}
	s = append(valset.Set(nil), s...)
	i := s.Find(addr)
	switch {
	case i < 0 && delta < 0:
		return fmt.Errorf("%w: %s is not a validator", transform.ErrNotFound, addr)
	case delta > 0:
		if err := checkNotJailed(st, addr); err != nil {
			return err
		}
	}
	switch {
	case i < 0 && delta > 0:
		if key.Address() != addr {
			return fmt.Errorf("%w: no public key for new validator %s", transform.ErrInvalid, addr)
		}
		s = append(s, valset.Validator{Address: addr, PubKey: key, Power: uint64(delta)})
		s.Sort()
	case delta < 0 && s[i].Power < uint64(-delta):
		return fmt.Errorf("%w: %s has power %d, cannot remove %d", transform.ErrInsufficientFunds, addr, s[i].Power, -delta)
	case delta < 0 && s[i].Power == uint64(-delta):
		s = append(s[:i], s[i+1:]...)
	default:
		s[i].Power = uint64(int64(s[i].Power) + delta)
	}
	if s.TotalPower() == 0 {
		return fmt.Errorf("%w: the change would leave the chain without voting power", transform.ErrInvalid)
	}
	if err := s.Check(); err != nil {
		return fmt.Errorf("%w: %v", transform.ErrInvalid, err)
	}
	if err := st.Set(SetKey, s); err != nil {
		return err
	}
	var bond uint64
	if _, err := st.Get(BondKey(addr), &bond); err != nil {
		return err
	}
	if delta < 0 {
		bond -= uint64(-delta)
	} else {
		bond += uint64(delta)
	}
	if bond == 0 {
		return st.Delete(BondKey(addr))
	}
	return st.Set(BondKey(addr), bond)
}

func checkAmount(a uint64) error {
	if a == 0 || a > math.MaxInt64 {
		return fmt.Errorf("%w: amount must be in 1..%d", transform.ErrInvalid, int64(math.MaxInt64))
	}
	return nil
}

// Stake bonds Amount of the staking asset from the first signer, who becomes (or
// stays) a validator with that much more power, voting with the signing key.
type Stake struct {
	Amount uint64 `cbor:"1,keyasint" json:"amount"`
	// Asset must name the chain's staking asset; it is part of the payload so the
	// transform can declare its balance key without reading state.
	Asset string `cbor:"2,keyasint" json:"asset"`
}

// Keys implements transform.Transform.
func (t *Stake) Keys(ctx *transform.Context) (r, w []string) {
	a := ctx.Signers[0]
	return []string{StakingAssetKey, JailKey(a)}, []string{SetKey, BondKey(a), asset.BalanceKey(t.Asset, a)}
}

// Authorizations implements transform.Transform.
func (t *Stake) Authorizations(ctx *transform.Context) []crypto.Address { return ctx.Signers[:1] }

// Verify implements transform.Transform.
func (t *Stake) Verify(_ *transform.Context, st transform.State) error {
	if err := checkAmount(t.Amount); err != nil {
		return err
	}
	a, err := stakingAsset(st)
	if err != nil {
		return err
	}
	if a != t.Asset {
		return fmt.Errorf("%w: the staking asset is %q, not %q", transform.ErrInvalid, a, t.Asset)
	}
	return nil
}

// Apply implements transform.Transform.
func (t *Stake) Apply(ctx *transform.Context, st transform.State) error {
	if err := asset.Debit(st, t.Asset, ctx.Signers[0], t.Amount); err != nil {
		return err
	}
	return adjust(st, ctx.Signers[0], ctx.SignerKeys[0], int64(t.Amount))
}

// Unstake removes Amount of power from the first signer and returns the bond to
// its balance. A validator whose power reaches zero leaves the set.
type Unstake struct {
	Amount uint64 `cbor:"1,keyasint" json:"amount"`
	Asset  string `cbor:"2,keyasint" json:"asset"`
}

// Keys implements transform.Transform.
func (t *Unstake) Keys(ctx *transform.Context) (r, w []string) {
	a := ctx.Signers[0]
	return []string{StakingAssetKey}, []string{SetKey, BondKey(a), asset.BalanceKey(t.Asset, a)}
}

// Authorizations implements transform.Transform.
func (t *Unstake) Authorizations(ctx *transform.Context) []crypto.Address { return ctx.Signers[:1] }

// Verify implements transform.Transform.
func (t *Unstake) Verify(ctx *transform.Context, st transform.State) error {
	s := &Stake{Amount: t.Amount, Asset: t.Asset}
	return s.Verify(ctx, st)
}

// Apply implements transform.Transform.
func (t *Unstake) Apply(ctx *transform.Context, st transform.State) error {
	if err := adjust(st, ctx.Signers[0], ctx.SignerKeys[0], -int64(t.Amount)); err != nil {
		return err
	}
	return asset.Credit(st, t.Asset, ctx.Signers[0], t.Amount)
}

// TransferPower moves Amount of power (and its bond) from the first signer to To,
// which joins the set with ToKey if it is not a validator yet. On a chain with
// the validator role, To becomes a member of it, so that a validator moved to a
// new key can move its power on (or back) without an admin.
type TransferPower struct {
	To     crypto.Address   `cbor:"1,keyasint" json:"to"`
	ToKey  crypto.PublicKey `cbor:"2,keyasint" json:"to_key"`
	Amount uint64           `cbor:"3,keyasint" json:"amount"`
}

// Keys implements transform.Transform.
func (t *TransferPower) Keys(ctx *transform.Context) (r, w []string) {
	return []string{JailKey(t.To), rbac.RoleKey(Role)}, []string{SetKey, BondKey(ctx.Signers[0]), BondKey(t.To), rbac.MemberKey(Role, t.To)}
}

// Authorizations implements transform.Transform.
func (t *TransferPower) Authorizations(ctx *transform.Context) []crypto.Address {
	return ctx.Signers[:1]
}

// Verify implements transform.Transform.
func (t *TransferPower) Verify(ctx *transform.Context, _ transform.State) error {
	if err := checkAmount(t.Amount); err != nil {
		return err
	}
	if t.To == ctx.Signers[0] {
		return fmt.Errorf("%w: transfer of power to self", transform.ErrInvalid)
	}
	if t.ToKey.Address() != t.To {
		return fmt.Errorf("%w: to_key does not match to %s", transform.ErrInvalid, t.To)
	}
	return nil
}

// Apply implements transform.Transform.
func (t *TransferPower) Apply(ctx *transform.Context, st transform.State) error {
	// Credit first: a sole validator moving all its power to a new key would
	// otherwise pass through an empty set, which adjust refuses.
	if err := adjust(st, t.To, t.ToKey, int64(t.Amount)); err != nil {
		return err
	}
	if err := adjust(st, ctx.Signers[0], ctx.SignerKeys[0], -int64(t.Amount)); err != nil {
		return err
	}
	found, err := st.Get(rbac.RoleKey(Role), new(rbac.Role))
	if err != nil || !found {
		return err
	}
	return st.Set(rbac.MemberKey(Role, t.To), true)
}
