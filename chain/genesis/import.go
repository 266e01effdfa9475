package genesis

import (
	"encoding/hex"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/export"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/chain/validator"
	"github.com/plugchain/plug/chain/valset"
)

// StateImport names the state export a chain starts from and records, for audit,
// where that state came from. The export file itself is not in the genesis file
// (a state can be far larger than a genesis file may be): it is named by path and
// pinned by its SHA-256, and Changes refuses a file that differs, that does not
// verify (export.Verify: its entries hash to the certified state root, its
// certificate carries a quorum), or that is of another chain, height or root than
// recorded here.
type StateImport struct {
	// File is the export's path, relative to the directory of the genesis file
	// (or absolute). Not part of the genesis hash: the SHA-256 is.
	File string `json:"file"`
	// SHA256 is the SHA-256 of the export file's bytes, 64 hex digits.
	SHA256 string `json:"sha256"`
	// ChainID, GenesisHash, Height, StateRoot and HeaderHash are the old
	// chain's id and genesis hash, the exported height, its state root and the
	// hash of its block header, as in the export.
	ChainID     string `json:"chain_id"`
	GenesisHash string `json:"genesis_hash"`
	Height      uint64 `json:"height"`
	StateRoot   string `json:"state_root"`
	HeaderHash  string `json:"header_hash"`
}

// importHashKey is state_import's key in the normal form Doc.Hash encodes (no
// section may take it).
const importHashKey = 64

func (s *StateImport) normal() any {
	type n struct {
		SHA256      string `cbor:"1,keyasint"`
		ChainID     string `cbor:"2,keyasint"`
		GenesisHash string `cbor:"3,keyasint"`
		Height      uint64 `cbor:"4,keyasint"`
		StateRoot   string `cbor:"5,keyasint"`
		HeaderHash  string `cbor:"6,keyasint"`
	}
	return n{strings.ToLower(s.SHA256), s.ChainID, strings.ToLower(s.GenesisHash), s.Height,
		strings.ToLower(s.StateRoot), strings.ToLower(s.HeaderHash)}
}

// ImportPath is the path of the export d imports ("" if none): StateImport.File,
// relative to the directory of the file d was loaded from.
func (d *Doc) ImportPath() string {
	if d.StateImport == nil {
		return ""
	}
	f := d.StateImport.File
	if filepath.IsAbs(f) || d.src == nil || d.src.file == "" {
		return f
	}
	return filepath.Join(filepath.Dir(d.src.file), f)
}

func (d *Doc) checkImport(add func(path, format string, args ...any)) {
	si := d.StateImport
	if d.StakingAsset != "" {
		add("staking_asset", "must be empty with state_import: the staking asset is in the imported state")
	}
	if len(d.Roles) > 0 {
		add("roles", "must be empty with state_import: the roles are in the imported state")
	}
	if len(d.Assets) > 0 {
		add("assets", "must be empty with state_import: the assets and balances are in the imported state")
	}
	for name := range d.parts {
		add(name, "not allowed with state_import: the imported state holds the section's state")
	}
	if si.File == "" {
		add("state_import.file", "missing: the path of the state export (`plug node export`)")
	}
	hex32 := func(field, v string) {
		if b, err := hex.DecodeString(v); err != nil || len(b) != 32 {
			add("state_import."+field, "want 64 hex digits, got %q", v)
		}
	}
	hex32("sha256", si.SHA256)
	hex32("genesis_hash", si.GenesisHash)
	hex32("state_root", si.StateRoot)
	hex32("header_hash", si.HeaderHash)
	switch {
	case !chainIDRule.MatchString(si.ChainID):
		add("state_import.chain_id", "must be 1-64 of a-z 0-9 and '-', got %q", si.ChainID)
	case si.ChainID == d.ChainID:
		add("chain_id", "must differ from the imported chain's id %q: the old chain's signed transactions and certificates must not be valid on the new one", si.ChainID)
	}
	if si.Height == 0 {
		add("state_import.height", "must be a committed height >= 1")
	}
}

// LoadImport reads and verifies the export d imports and checks it against what
// d records (file hash, chain id, genesis hash, height, state root, header hash).
func (d *Doc) LoadImport() (*export.Header, []export.Entry, error) {
	si := d.StateImport
	if si == nil {
		return nil, nil, fmt.Errorf("genesis: no state_import")
	}
	path := d.ImportPath()
	hdr, entries, sum, err := export.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("genesis: state_import: %w", err)
	}
	if !strings.EqualFold(sum, si.SHA256) {
		return nil, nil, fmt.Errorf("genesis: state_import: %s has SHA-256 %s, the genesis names %s: use the export file the genesis was built from", path, sum, si.SHA256)
	}
	if err := export.Verify(hdr, entries); err != nil {
		return nil, nil, fmt.Errorf("genesis: state_import: %s: %w", path, err)
	}
	for _, c := range []struct{ field, got, want string }{
		{"chain_id", hdr.ChainID, si.ChainID},
		{"genesis_hash", hdr.GenesisHash.String(), strings.ToLower(si.GenesisHash)},
		{"height", fmt.Sprint(hdr.Height), fmt.Sprint(si.Height)},
		{"state_root", hdr.StateRoot.String(), strings.ToLower(si.StateRoot)},
		{"header_hash", hdr.HeaderHash.String(), strings.ToLower(si.HeaderHash)},
	} {
		if c.got != c.want {
			return nil, nil, fmt.Errorf("genesis: state_import.%s is %s, the export says %s", c.field, c.want, c.got)
		}
	}
	return hdr, entries, nil
}

// importChanges is the initial state of an importing document: the exported
// entries, with the validator set replaced by d's (set) when it differs. With a
// staking asset, each validator's bond is made its new power: a bond that grows
// is new stake (the supply grows, as genesis grants power), one that shrinks goes
// back to its owner's balance; new validators join the "validator" role if the
// state has one.
func (d *Doc) importChanges(set valset.Set) ([]state.Change, error) {
	hdr, entries, err := d.LoadImport()
	if err != nil {
		return nil, err
	}
	out := make([]state.Change, len(entries))
	for i, e := range entries {
		out[i] = state.Change{Key: e.Key, Value: e.Value}
	}
	if set.Hash() == hdr.Validators.Hash() {
		return out, nil
	}
	over := map[string][]byte{}
	get := func(key string, dst any) (bool, error) {
		v, ok := over[key]
		if !ok {
			i := sort.Search(len(entries), func(i int) bool { return entries[i].Key >= key })
			if i == len(entries) || entries[i].Key != key {
				return false, nil
			}
			v = entries[i].Value
		}
		if v == nil {
			return false, nil
		}
		return true, encoding.UnmarshalLax(v, dst)
	}
	put := func(key string, v any) error {
		b, err := encoding.Marshal(v)
		if err != nil {
			return fmt.Errorf("genesis: state_import: %s: %w", key, err)
		}
		over[key] = b
		return nil
	}
	if err := set.Check(); err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	if err := put(validator.SetKey, set); err != nil {
		return nil, err
	}
	var staking string
	if _, err := get(validator.StakingAssetKey, &staking); err != nil {
		return nil, fmt.Errorf("genesis: state_import: %s: %w", validator.StakingAssetKey, err)
	}
	if staking != "" {
		var supply uint64
		if _, err := get(asset.SupplyKey(staking), &supply); err != nil {
			return nil, fmt.Errorf("genesis: state_import: supply of %s: %w", staking, err)
		}
		addrs := map[crypto.Address]uint64{}
		for _, v := range hdr.Validators {
			addrs[v.Address] = 0
		}
		for _, v := range set {
			addrs[v.Address] = v.Power
		}
		for _, a := range slices.SortedFunc(func(yield func(crypto.Address) bool) {
			for a := range addrs {
				if !yield(a) {
					return
				}
			}
		}, func(a, b crypto.Address) int { return strings.Compare(a.String(), b.String()) }) {
			power := addrs[a]
			var bond uint64
			if _, err := get(validator.BondKey(a), &bond); err != nil {
				return nil, fmt.Errorf("genesis: state_import: bond of %s: %w", a, err)
			}
			switch {
			case power > bond:
				if supply > math.MaxUint64-(power-bond) {
					return nil, fmt.Errorf("genesis: the new validators' power overflows the supply of %s", staking)
				}
				supply += power - bond
			case power < bond:
				var bal uint64
				if _, err := get(asset.BalanceKey(staking, a), &bal); err != nil {
					return nil, fmt.Errorf("genesis: state_import: balance of %s: %w", a, err)
				}
				if err := put(asset.BalanceKey(staking, a), bal+(bond-power)); err != nil {
					return nil, err
				}
			}
			if power == bond {
				continue
			}
			if power == 0 {
				over[validator.BondKey(a)] = nil
			} else if err := put(validator.BondKey(a), power); err != nil {
				return nil, err
			}
		}
		var def asset.Definition
		if _, err := get(asset.DefKey(staking), &def); err != nil {
			return nil, fmt.Errorf("genesis: state_import: asset %s: %w", staking, err)
		}
		if def.MaxSupply > 0 && supply > def.MaxSupply {
			return nil, fmt.Errorf("genesis: the new validators' power makes the supply of %s %d, above its max supply %d", staking, supply, def.MaxSupply)
		}
		if err := put(asset.SupplyKey(staking), supply); err != nil {
			return nil, err
		}
	}
	var role rbac.Role
	if ok, err := get(rbac.RoleKey("validator"), &role); err != nil {
		return nil, fmt.Errorf("genesis: state_import: role validator: %w", err)
	} else if ok {
		for _, v := range set {
			if err := put(rbac.MemberKey("validator", v.Address), true); err != nil {
				return nil, err
			}
		}
	}
	// Merge the overrides into the sorted entries.
	for i := range out {
		if v, ok := over[out[i].Key]; ok {
			out[i].Value, out[i].Delete = v, v == nil
			delete(over, out[i].Key)
		}
	}
	for k, v := range over {
		if v != nil {
			out = append(out, state.Change{Key: k, Value: v})
		}
	}
	out = slices.DeleteFunc(out, func(c state.Change) bool { return c.Delete })
	slices.SortFunc(out, func(a, b state.Change) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}
