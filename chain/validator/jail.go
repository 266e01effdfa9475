package validator

import (
	"fmt"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/transform"
)

// AccountabilityKey holds the chain's Accountability rules.
const AccountabilityKey = "params/accountability"

// TypeUnjail is the transform that lets a jailed address hold power again.
const TypeUnjail = "validator/unjail"

// DefaultEvidenceMaxAge is how many heights back evidence of an offence is
// accepted when Accountability.EvidenceMaxAge is 0.
const DefaultEvidenceMaxAge = 100_000

// MaxSlashBps is 100% in basis points.
const MaxSlashBps = 10_000

// Accountability says what happens to validators that misbehave or go missing.
// The genesis sets it (genesis.Doc.Accountability); absent, equivocators are
// jailed with their bond returned and absence is not punished.
type Accountability struct {
	// SlashBps is the share of an equivocator's bond, in basis points, that is
	// burned (taken out of the staking asset's supply); the rest returns to the
	// offender's balance.
	SlashBps uint32 `cbor:"1,keyasint" json:"slash_bps" toml:"slash_bps"`
	// AbsentHeights, when positive, unstakes a validator missing from the commit
	// certificates of that many consecutive heights (chain/liveness); its bond
	// returns to its balance and it is not jailed. Blocks then carry the
	// certificate of their parent.
	AbsentHeights uint64 `cbor:"2,keyasint" json:"absent_heights" toml:"absent_heights"`
	// EvidenceMaxAge is how many heights back evidence is accepted; 0 means
	// DefaultEvidenceMaxAge.
	EvidenceMaxAge uint64 `cbor:"3,keyasint" json:"evidence_max_age" toml:"evidence_max_age"`
}

// Check reports rules out of range.
func (a Accountability) Check() error {
	if a.SlashBps > MaxSlashBps {
		return fmt.Errorf("slash_bps %d is above %d (100%%)", a.SlashBps, MaxSlashBps)
	}
	return nil
}

// MaxAge is EvidenceMaxAge with its default.
func (a Accountability) MaxAge() uint64 {
	if a.EvidenceMaxAge == 0 {
		return DefaultEvidenceMaxAge
	}
	return a.EvidenceMaxAge
}

// LoadAccountability reads the chain's rules (zero when the genesis set none).
func LoadAccountability(st Getter) (Accountability, error) {
	var a Accountability
	if _, err := st.Get(AccountabilityKey, &a); err != nil {
		return a, fmt.Errorf("load accountability rules: %w", err)
	}
	return a, nil
}

// JailKey is where addr's jail record is kept.
func JailKey(addr crypto.Address) string { return "jail/" + addr.String() }

// JailRecord is why and when an address lost its power for an offence. While it
// is not Released, the address cannot hold power (stake, transfer-power to it).
type JailRecord struct {
	// Offence is the height of the offence; evidence of an offence at or below
	// it is not punished again.
	Offence uint64 `cbor:"1,keyasint" json:"offence"`
	// Height is the height that jailed it.
	Height uint64 `cbor:"2,keyasint" json:"height"`
	Reason string `cbor:"3,keyasint" json:"reason"`
	// Power is the power it lost; Slashed the part of its bond burned.
	Power    uint64 `cbor:"4,keyasint" json:"power"`
	Slashed  uint64 `cbor:"5,keyasint" json:"slashed"`
	Released bool   `cbor:"6,keyasint" json:"released"`
}

// LoadJail reads addr's jail record.
func LoadJail(st Getter, addr crypto.Address) (JailRecord, bool, error) {
	var r JailRecord
	found, err := st.Get(JailKey(addr), &r)
	return r, found, err
}

func checkNotJailed(st transform.State, addr crypto.Address) error {
	r, found, err := LoadJail(st, addr)
	if err != nil {
		return err
	}
	if found && !r.Released {
		return fmt.Errorf("%w: %s is jailed since height %d (%s); an admin may release it with %s", transform.ErrUnauthorized, addr, r.Height, r.Reason, TypeUnjail)
	}
	return nil
}

// Jail takes all of addr's power for an offence at height offence, recording
// why: slashBps of its bond is burned and the rest returned to its balance of
// stakingAsset ("" on a chain without one: power is not bonded). The caller
// declares the keys JailKeys names.
func Jail(st transform.State, addr crypto.Address, stakingAsset string, offence, height uint64, reason string, slashBps uint32) (JailRecord, error) {
	s, err := Load(st)
	if err != nil {
		return JailRecord{}, err
	}
	i := s.Find(addr)
	if i < 0 {
		return JailRecord{}, fmt.Errorf("%w: %s is not a validator", transform.ErrNotFound, addr)
	}
	rec := JailRecord{Offence: offence, Height: height, Reason: reason, Power: s[i].Power}
	if rec.Slashed, err = unbond(st, addr, stakingAsset, slashBps); err != nil {
		return JailRecord{}, err
	}
	return rec, st.Set(JailKey(addr), rec)
}

// UnstakeAll takes all of addr's power without jailing it (a validator that stopped
// signing): its bond returns to its balance. The caller declares UnbondKeys.
func UnstakeAll(st transform.State, addr crypto.Address, stakingAsset string) error {
	_, err := unbond(st, addr, stakingAsset, 0)
	return err
}

// unbond removes addr from the set, burns slashBps of its bond and credits the
// rest to its balance; it returns what it burned.
func unbond(st transform.State, addr crypto.Address, stakingAsset string, slashBps uint32) (uint64, error) {
	s, err := Load(st)
	if err != nil {
		return 0, err
	}
	i := s.Find(addr)
	if i < 0 {
		return 0, fmt.Errorf("%w: %s is not a validator", transform.ErrNotFound, addr)
	}
	power := s[i].Power
	if err := adjust(st, addr, s[i].PubKey, -int64(power)); err != nil {
		return 0, err
	}
	if stakingAsset == "" {
		return 0, nil
	}
	// power*slashBps/MaxSlashBps without overflowing.
	burn := power/MaxSlashBps*uint64(slashBps) + power%MaxSlashBps*uint64(slashBps)/MaxSlashBps
	if burn > 0 {
		var supply uint64
		if _, err := st.Get(asset.SupplyKey(stakingAsset), &supply); err != nil {
			return 0, err
		}
		if err := st.Set(asset.SupplyKey(stakingAsset), supply-min(supply, burn)); err != nil {
			return 0, err
		}
	}
	if power > burn {
		return burn, asset.Credit(st, stakingAsset, addr, power-burn)
	}
	return burn, nil
}

// UnbondKeys are the keys Jail and UnstakeAll read or write for addr.
func UnbondKeys(addr crypto.Address, stakingAsset string) (r, w []string) {
	r = []string{StakingAssetKey, AccountabilityKey}
	w = []string{SetKey, BondKey(addr), JailKey(addr)}
	if stakingAsset != "" {
		w = append(w, asset.BalanceKey(stakingAsset, addr), asset.SupplyKey(stakingAsset))
	}
	return r, w
}

// Unjail releases a jailed address: it may hold power again (stake, or receive
// it by transfer). Its record stays, so old evidence is not punished twice.
type Unjail struct {
	Address crypto.Address `cbor:"1,keyasint" json:"address"`
}

// Keys implements transform.Transform.
func (t *Unjail) Keys(*transform.Context) (r, w []string) {
	return nil, []string{JailKey(t.Address)}
}

// Authorizations implements transform.Transform: the RBAC role (admin by
// default) is the authority.
func (t *Unjail) Authorizations(*transform.Context) []crypto.Address { return nil }

// Verify implements transform.Transform.
func (t *Unjail) Verify(_ *transform.Context, st transform.State) error {
	r, found, err := LoadJail(st, t.Address)
	if err != nil {
		return err
	}
	if !found || r.Released {
		return fmt.Errorf("%w: %s is not jailed", transform.ErrNotFound, t.Address)
	}
	return nil
}

// Apply implements transform.Transform.
func (t *Unjail) Apply(_ *transform.Context, st transform.State) error {
	r, _, err := LoadJail(st, t.Address)
	if err != nil {
		return err
	}
	r.Released = true
	return st.Set(JailKey(t.Address), r)
}
