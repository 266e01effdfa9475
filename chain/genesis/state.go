package genesis

import (
	"fmt"
	"slices"
	"strings"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/validator"
)

// Changes returns the initial state of d as changes sorted by key, each value the
// canonical encoding of the Go type the transforms read it as, checked against its
// model in ms (nil skips the model checks):
//
//	rbac.RolesKey               []string        role names, sorted
//	rbac.RoleKey(role)          rbac.Role       transforms sorted
//	rbac.MemberKey(role, addr)  bool            true
//	asset.DefKey(asset)         asset.Definition
//	asset.BalanceKey(asset, a)  uint64
//	asset.SupplyKey(asset)      uint64          balances (+ bonds for the staking asset)
//	validator.SetKey            valset.Set   sorted by address
//	validator.BondKey(addr)     uint64          power (with a staking asset only)
//	validator.StakingAssetKey   string          (with a staking asset only)
//	validator.AccountabilityKey validator.Accountability (when the document has one)
//
// followed by the entries of each section the document has (Part.State).
//
// A document with a StateImport yields instead the imported entries, checked
// against the export's certified state root (LoadImport), with its validator set
// (and, with a staking asset, the bonds) in place of the export's when they
// differ.
//
// An invalid d returns its ErrorList; transform names are not checked here (call
// Validate with the chain's registry for that).
func (d *Doc) Changes(ms *transform.Models) ([]state.Change, error) {
	errs, c := d.check(nil)
	if len(errs) > 0 {
		return nil, errs
	}
	if d.StateImport != nil {
		return d.importChanges(c.set)
	}
	var out []state.Change
	put := func(key string, v any) error {
		if ms != nil {
			if err := ms.Check(key, v); err != nil {
				return fmt.Errorf("genesis: %w", err)
			}
		}
		b, err := encoding.Marshal(v)
		if err != nil {
			return fmt.Errorf("genesis: %s: %w", key, err)
		}
		out = append(out, state.Change{Key: key, Value: b})
		return nil
	}

	names := make([]string, 0, len(d.Roles))
	for _, r := range d.Roles {
		names = append(names, r.Name)
	}
	slices.Sort(names)
	if err := put(rbac.RolesKey, names); err != nil {
		return nil, err
	}
	for _, r := range d.Roles {
		// Built as rbac.SetRole builds it, so a role re-set to the same value
		// encodes to the same bytes.
		trs := append([]string(nil), r.Transforms...)
		slices.Sort(trs)
		if err := put(rbac.RoleKey(r.Name), rbac.Role{Transforms: trs, Public: r.Public}); err != nil {
			return nil, err
		}
		for _, m := range c.members[r.Name] {
			if err := put(rbac.MemberKey(r.Name, m), true); err != nil {
				return nil, err
			}
		}
	}
	for _, a := range d.Assets {
		def := asset.Definition{Issuer: a.Issuer, Decimals: a.Decimals, MaxSupply: a.MaxSupply}
		if err := put(asset.DefKey(a.Name), def); err != nil {
			return nil, err
		}
		for addr, amt := range c.balances[a.Name] {
			if err := put(asset.BalanceKey(a.Name, addr), amt); err != nil {
				return nil, err
			}
		}
		if err := put(asset.SupplyKey(a.Name), c.supply[a.Name]); err != nil {
			return nil, err
		}
	}
	if err := c.set.Check(); err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	if err := put(validator.SetKey, c.set); err != nil {
		return nil, err
	}
	if d.StakingAsset != "" {
		for _, v := range c.set {
			if err := put(validator.BondKey(v.Address), v.Power); err != nil {
				return nil, err
			}
		}
		if err := put(validator.StakingAssetKey, d.StakingAsset); err != nil {
			return nil, err
		}
	}
	if d.Accountability != nil {
		if err := put(validator.AccountabilityKey, *d.Accountability); err != nil {
			return nil, err
		}
	}
	for _, sec := range Sections() {
		if p := d.parts[sec.Name]; p != nil {
			for _, e := range p.State() {
				if err := put(e.Key, e.Value); err != nil {
					return nil, err
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b state.Change) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// Init commits the genesis state of d into st, which must be empty (no version
// committed yet), and returns its state root.
func Init(st *state.Store, d *Doc, ms *transform.Models) (hash.Hash, error) {
	if v := st.Version(); v != 0 {
		return hash.Hash{}, fmt.Errorf("genesis: the state is not empty (version %d)", v)
	}
	ch, err := d.Changes(ms)
	if err != nil {
		return hash.Hash{}, err
	}
	b, err := st.Stage(ch)
	if err != nil {
		return hash.Hash{}, fmt.Errorf("genesis: stage: %w", err)
	}
	if err := st.Commit(b); err != nil {
		return hash.Hash{}, fmt.Errorf("genesis: commit: %w", err)
	}
	return b.Root(), nil
}
