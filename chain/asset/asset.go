// Package asset holds fungible assets: definitions, balances and supply, and the
// built-in transforms that create, issue, burn and transfer them. Balances default to
// zero and never go negative; only members of an asset's issuer role may issue or
// burn it, so supply changes only by explicit issue and burn.
package asset

import (
	"errors"
	"fmt"
	"math"
	"regexp"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/transform"
)

// Transform type names.
const (
	TypeCreate   = "asset/create"
	TypeIssue    = "asset/issue"
	TypeBurn     = "asset/burn"
	TypeTransfer = "asset/transfer"
)

// Definition describes an asset.
type Definition struct {
	// Issuer is the role whose members may issue and burn the asset.
	Issuer string `cbor:"1,keyasint" json:"issuer"`
	// Decimals is how many decimal places a display divides amounts by.
	Decimals uint8 `cbor:"2,keyasint" json:"decimals"`
	// MaxSupply caps the supply; 0 means no cap beyond 2^64-1.
	MaxSupply uint64 `cbor:"3,keyasint,omitempty" json:"max_supply,omitempty"`
}

// Limit is the most supply the asset may reach: MaxSupply, or 2^64-1 without a cap.
func (d Definition) Limit() uint64 {
	if d.MaxSupply == 0 {
		return math.MaxUint64
	}
	return d.MaxSupply
}

// DefKey is where an asset's definition is stored.
func DefKey(asset string) string { return "asset/" + asset }

// BalanceKey is where addr's balance of asset is stored.
func BalanceKey(asset string, addr crypto.Address) string {
	return "balance/" + asset + "/" + addr.String()
}

// SupplyKey is where an asset's total supply is stored.
func SupplyKey(asset string) string { return "supply/" + asset }

var assetName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)

// ErrBadName: an asset name that does not fit the naming rule.
var ErrBadName = errors.New("bad asset name")

// ErrZeroAddress: an issue or transfer to the zero address, whose key no one
// holds: what is sent there could never be moved again.
var ErrZeroAddress = errors.New("recipient is the zero address")

// recipient refuses the zero address as a recipient.
func recipient(to crypto.Address) error {
	if to.IsZero() {
		return fmt.Errorf("%w: %w: what is sent there could never be moved again", transform.ErrInvalid, ErrZeroAddress)
	}
	return nil
}

// CheckName checks an asset name: 1-32 of A-Z a-z 0-9 . _ - , starting alphanumeric.
func CheckName(name string) error {
	if !assetName.MatchString(name) {
		return fmt.Errorf("%w: %q (want 1-32 of A-Z a-z 0-9 . _ -)", ErrBadName, name)
	}
	return nil
}

// AddModels registers the asset models.
func AddModels(ms *transform.Models) {
	ms.MustAdd(transform.Model{Name: "asset", Prefix: "asset/", Default: func() any { return Definition{} },
		Validate: func(v any) error {
			d, ok := v.(Definition)
			if !ok {
				return fmt.Errorf("want asset.Definition, got %T", v)
			}
			return rbac.CheckRoleName(d.Issuer)
		}})
	ms.MustAdd(transform.Model{Name: "balance", Prefix: "balance/", Default: func() any { return uint64(0) },
		Validate: wantUint64})
	ms.MustAdd(transform.Model{Name: "supply", Prefix: "supply/", Default: func() any { return uint64(0) },
		Validate: wantUint64})
}

func wantUint64(v any) error {
	if _, ok := v.(uint64); !ok {
		return fmt.Errorf("want uint64, got %T", v)
	}
	return nil
}

// Register adds the asset transforms to reg.
func Register(reg *transform.Registry) {
	reg.MustRegister(TypeCreate, &Create{})
	reg.MustRegister(TypeIssue, &Issue{})
	reg.MustRegister(TypeBurn, &Burn{})
	reg.MustRegister(TypeTransfer, &Transfer{})
}

// Load returns asset's definition, or ErrNotFound wrapped with its name.
func Load(st transform.State, asset string) (Definition, error) {
	var d Definition
	if err := CheckName(asset); err != nil {
		return d, fmt.Errorf("%w: %v", transform.ErrInvalid, err)
	}
	found, err := st.Get(DefKey(asset), &d)
	if err != nil {
		return d, err
	}
	if !found {
		return d, fmt.Errorf("%w: unknown asset %q", transform.ErrNotFound, asset)
	}
	return d, nil
}

// Debit takes amount of asset from addr, refusing to go below zero.
func Debit(st transform.State, asset string, addr crypto.Address, amount uint64) error {
	k := BalanceKey(asset, addr)
	var bal uint64
	if _, err := st.Get(k, &bal); err != nil {
		return err
	}
	if bal < amount {
		return fmt.Errorf("%w: %s holds %d %s, needs %d", transform.ErrInsufficientFunds, addr, bal, asset, amount)
	}
	return st.Set(k, bal-amount)
}

// Credit gives amount of asset to addr, refusing to overflow.
func Credit(st transform.State, asset string, addr crypto.Address, amount uint64) error {
	k := BalanceKey(asset, addr)
	var bal uint64
	if _, err := st.Get(k, &bal); err != nil {
		return err
	}
	if bal > math.MaxUint64-amount {
		return fmt.Errorf("%w: crediting %d %s to %s overflows", transform.ErrInvalid, amount, asset, addr)
	}
	return st.Set(k, bal+amount)
}

func isIssuer(ctx *transform.Context, st transform.State, d Definition, asset string) error {
	for _, s := range ctx.Signers {
		var m bool
		if _, err := st.Get(rbac.MemberKey(d.Issuer, s), &m); err != nil {
			return err
		}
		if m {
			return nil
		}
	}
	return fmt.Errorf("%w: no signer holds %q, the issuer role of %s", transform.ErrUnauthorized, d.Issuer, asset)
}

func positive(amount uint64) error {
	if amount == 0 {
		return fmt.Errorf("%w: amount must be positive", transform.ErrInvalid)
	}
	return nil
}

// Create defines a new asset.
type Create struct {
	Asset      string     `cbor:"1,keyasint" json:"asset"`
	Definition Definition `cbor:"2,keyasint" json:"definition"`
}

// Keys implements transform.Transform.
func (t *Create) Keys(*transform.Context) (r, w []string) { return nil, []string{DefKey(t.Asset)} }

// Authorizations implements transform.Transform: the RBAC policy decides who may.
func (t *Create) Authorizations(*transform.Context) []crypto.Address { return nil }

// Verify implements transform.Transform.
func (t *Create) Verify(_ *transform.Context, st transform.State) error {
	if err := CheckName(t.Asset); err != nil {
		return fmt.Errorf("%w: %v", transform.ErrInvalid, err)
	}
	if err := rbac.CheckRoleName(t.Definition.Issuer); err != nil {
		return fmt.Errorf("%w: %v", transform.ErrInvalid, err)
	}
	found, err := st.Get(DefKey(t.Asset), new(Definition))
	if err != nil {
		return err
	}
	if found {
		return fmt.Errorf("%w: asset %q already exists", transform.ErrInvalid, t.Asset)
	}
	return nil
}

// Apply implements transform.Transform.
func (t *Create) Apply(_ *transform.Context, st transform.State) error {
	return st.Set(DefKey(t.Asset), t.Definition)
}

// Issue creates Amount of Asset in To's balance.
type Issue struct {
	Asset  string         `cbor:"1,keyasint" json:"asset"`
	To     crypto.Address `cbor:"2,keyasint" json:"to"`
	Amount uint64         `cbor:"3,keyasint" json:"amount"`
}

// Keys implements transform.Transform.
func (t *Issue) Keys(*transform.Context) (r, w []string) {
	return []string{DefKey(t.Asset)}, []string{SupplyKey(t.Asset), BalanceKey(t.Asset, t.To)}
}

// Authorizations implements transform.Transform: issuer membership is checked in Verify.
func (t *Issue) Authorizations(*transform.Context) []crypto.Address { return nil }

// Verify implements transform.Transform.
func (t *Issue) Verify(ctx *transform.Context, st transform.State) error {
	if err := positive(t.Amount); err != nil {
		return err
	}
	if err := recipient(t.To); err != nil {
		return err
	}
	d, err := Load(st, t.Asset)
	if err != nil {
		return err
	}
	if err := isIssuer(ctx, st, d, t.Asset); err != nil {
		return err
	}
	var supply uint64
	if _, err := st.Get(SupplyKey(t.Asset), &supply); err != nil {
		return err
	}
	limit := d.Limit()
	if supply > limit-t.Amount || t.Amount > limit {
		return fmt.Errorf("%w: issuing %d %s exceeds the supply cap %d (supply %d)", transform.ErrInvalid, t.Amount, t.Asset, limit, supply)
	}
	return nil
}

// Apply implements transform.Transform.
func (t *Issue) Apply(_ *transform.Context, st transform.State) error {
	var supply uint64
	if _, err := st.Get(SupplyKey(t.Asset), &supply); err != nil {
		return err
	}
	if err := st.Set(SupplyKey(t.Asset), supply+t.Amount); err != nil {
		return err
	}
	return Credit(st, t.Asset, t.To, t.Amount)
}

// Burn destroys Amount of Asset from From's balance; From must sign and an issuer
// must sign (they may be the same identity).
type Burn struct {
	Asset  string         `cbor:"1,keyasint" json:"asset"`
	From   crypto.Address `cbor:"2,keyasint" json:"from"`
	Amount uint64         `cbor:"3,keyasint" json:"amount"`
}

// Keys implements transform.Transform.
func (t *Burn) Keys(*transform.Context) (r, w []string) {
	return []string{DefKey(t.Asset)}, []string{SupplyKey(t.Asset), BalanceKey(t.Asset, t.From)}
}

// Authorizations implements transform.Transform.
func (t *Burn) Authorizations(*transform.Context) []crypto.Address {
	return []crypto.Address{t.From}
}

// Verify implements transform.Transform.
func (t *Burn) Verify(ctx *transform.Context, st transform.State) error {
	if err := positive(t.Amount); err != nil {
		return err
	}
	d, err := Load(st, t.Asset)
	if err != nil {
		return err
	}
	if err := isIssuer(ctx, st, d, t.Asset); err != nil {
		return err
	}
	var bal uint64
	if _, err := st.Get(BalanceKey(t.Asset, t.From), &bal); err != nil {
		return err
	}
	if bal < t.Amount {
		return fmt.Errorf("%w: %s holds %d %s, burn needs %d", transform.ErrInsufficientFunds, t.From, bal, t.Asset, t.Amount)
	}
	return nil
}

// Apply implements transform.Transform.
func (t *Burn) Apply(_ *transform.Context, st transform.State) error {
	var supply uint64
	if _, err := st.Get(SupplyKey(t.Asset), &supply); err != nil {
		return err
	}
	if supply < t.Amount {
		return fmt.Errorf("%w: supply of %s (%d) below burn %d", transform.ErrInvalid, t.Asset, supply, t.Amount)
	}
	if err := st.Set(SupplyKey(t.Asset), supply-t.Amount); err != nil {
		return err
	}
	return Debit(st, t.Asset, t.From, t.Amount)
}

// Transfer moves Amount of Asset from From (who must sign) to To.
type Transfer struct {
	Asset  string         `cbor:"1,keyasint" json:"asset"`
	From   crypto.Address `cbor:"2,keyasint" json:"from"`
	To     crypto.Address `cbor:"3,keyasint" json:"to"`
	Amount uint64         `cbor:"4,keyasint" json:"amount"`
}

// Keys implements transform.Transform.
func (t *Transfer) Keys(*transform.Context) (r, w []string) {
	return []string{DefKey(t.Asset)}, []string{BalanceKey(t.Asset, t.From), BalanceKey(t.Asset, t.To)}
}

// Authorizations implements transform.Transform.
func (t *Transfer) Authorizations(*transform.Context) []crypto.Address {
	return []crypto.Address{t.From}
}

// Verify implements transform.Transform.
func (t *Transfer) Verify(_ *transform.Context, st transform.State) error {
	if err := positive(t.Amount); err != nil {
		return err
	}
	if err := recipient(t.To); err != nil {
		return err
	}
	if t.From == t.To {
		return fmt.Errorf("%w: transfer to self", transform.ErrInvalid)
	}
	if _, err := Load(st, t.Asset); err != nil {
		return err
	}
	return nil
}

// Apply implements transform.Transform.
func (t *Transfer) Apply(_ *transform.Context, st transform.State) error {
	if err := Debit(st, t.Asset, t.From, t.Amount); err != nil {
		return err
	}
	return Credit(st, t.Asset, t.To, t.Amount)
}

// IndexTerms implements transform.Indexed: the asset.
func (t *Create) IndexTerms(*transform.Context) []transform.Term {
	return []transform.Term{{Kind: transform.TermAsset, Value: t.Asset}}
}

// IndexTerms implements transform.Indexed: the asset and the account credited.
func (t *Issue) IndexTerms(*transform.Context) []transform.Term {
	return []transform.Term{{Kind: transform.TermAsset, Value: t.Asset}, transform.AccountTerm(t.To)}
}

// IndexTerms implements transform.Indexed: the asset and the account debited.
func (t *Burn) IndexTerms(*transform.Context) []transform.Term {
	return []transform.Term{{Kind: transform.TermAsset, Value: t.Asset}, transform.AccountTerm(t.From)}
}

// IndexTerms implements transform.Indexed: the asset and both accounts.
func (t *Transfer) IndexTerms(*transform.Context) []transform.Term {
	return []transform.Term{{Kind: transform.TermAsset, Value: t.Asset},
		transform.AccountTerm(t.From), transform.AccountTerm(t.To)}
}
