// Package liveness is the chain's absence rule: a validator missing from the
// commit certificates of validator.Accountability.AbsentHeights consecutive
// heights loses its power (its bond returns to its balance; it is not jailed).
//
// When the rule is on, each block carries the certificate of its parent
// (block.Block.LastCert), which every validator checks against the set that
// signed the parent (kept at SignersKey) and executes: who signed is state, so
// the state root, signed by the next certificate, commits to it. A certificate
// holds more than two thirds of the power, not necessarily every vote: a node
// adds the commit votes that reach it after its decision before it proposes
// (chain/node), so a slow but live validator is counted. The rule runs after the
// block's transactions, in block.Build and block.Check alike.
package liveness

import (
	"errors"
	"fmt"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/validator"
	"github.com/plugchain/plug/chain/valset"
)

// State keys.
const (
	// SignersKey holds the validator set that signed the block the state
	// follows: the set a block's LastCert is checked against.
	SignersKey = "liveness/signers"
	// AbsentPrefix prefixes each absent validator's Absence.
	AbsentPrefix = "liveness/absent/"
)

// AbsentKey is where addr's current absence is kept.
func AbsentKey(addr crypto.Address) string { return AbsentPrefix + addr.String() }

// Absence is a run of consecutive certificates a validator is missing from.
type Absence struct {
	// Since and Last are the heights of the first and the latest certificate
	// of the run.
	Since uint64 `cbor:"1,keyasint" json:"since"`
	Last  uint64 `cbor:"2,keyasint" json:"last"`
}

// Sentinel errors; callers branch on them with errors.Is.
var (
	// ErrLastCert: a block's parent certificate is missing, present where the
	// chain does not use it, or does not certify the parent.
	ErrLastCert = errors.New("bad parent certificate")
)

// AddModels registers the liveness models.
func AddModels(ms *transform.Models) {
	ms.MustAdd(transform.Model{Name: "liveness-signers", Prefix: SignersKey, Default: func() any { return valset.Set(nil) }})
	ms.MustAdd(transform.Model{Name: "liveness-absent", Prefix: AbsentPrefix, Default: func() any { return Absence{} }})
}

// Getter reads decoded state values.
type Getter interface {
	Get(key string, dst any) (bool, error)
}

// Apply runs the rule at the end of block height (after its transactions, in
// res), whose parent is prev (nil for block 1) and which carries last, the
// parent's certificate. base is the state before the block: its validator set
// signs this block.
func Apply(res *exec.Result, base Getter, chainID string, height uint64, prev *hash.Hash, last *consensus.Certificate) error {
	rules, err := validator.LoadAccountability(res)
	if err != nil {
		return err
	}
	if rules.AbsentHeights == 0 {
		if last != nil {
			return fmt.Errorf("%w: this chain does not use parent certificates", ErrLastCert)
		}
		return nil
	}
	signing, err := validator.Load(base)
	if err != nil {
		return err
	}
	var parentSet valset.Set
	if _, err := res.Get(SignersKey, &parentSet); err != nil {
		return err
	}
	var staking string
	if _, err := res.Get(validator.StakingAssetKey, &staking); err != nil {
		return err
	}
	present := map[crypto.Address]bool{}
	if height > 1 && len(parentSet) > 0 {
		if last == nil {
			return fmt.Errorf("%w: block %d carries no certificate of block %d", ErrLastCert, height, height-1)
		}
		if last.Height != height-1 || prev == nil || last.BlockID != *prev {
			return fmt.Errorf("%w: certificate of %d/%s, parent is %d", ErrLastCert, last.Height, last.BlockID.Short(), height-1)
		}
		if err := last.Verify(chainID, parentSet); err != nil {
			return fmt.Errorf("%w: %w", ErrLastCert, err)
		}
		for _, v := range last.Votes {
			present[v.Validator] = true
		}
	} else if last != nil {
		return fmt.Errorf("%w: block %d has no parent certificate to carry", ErrLastCert, height)
	}
	reads := []string{validator.AccountabilityKey, validator.StakingAssetKey}
	writes := []string{SignersKey}
	for _, v := range parentSet {
		r, w := validator.UnbondKeys(v.Address, staking)
		reads = append(reads, r...)
		writes = append(writes, w...)
		writes = append(writes, AbsentKey(v.Address))
	}
	if staking != "" {
		writes = append(writes, asset.SupplyKey(staking))
	}
	return res.Finalize(reads, writes, func(st transform.State) error {
		if height > 1 {
			if err := count(st, rules.AbsentHeights, height-1, parentSet, present, staking); err != nil {
				return err
			}
		}
		if signing.Hash() != parentSet.Hash() {
			return st.Set(SignersKey, signing)
		}
		return nil
	})
}

// count records who of set is missing from the certificate of height h and
// unstakes those missing from limit consecutive ones.
func count(st transform.State, limit, h uint64, set valset.Set, present map[crypto.Address]bool, staking string) error {
	for _, v := range set {
		k := AbsentKey(v.Address)
		var a Absence
		found, err := st.Get(k, &a)
		if err != nil {
			return err
		}
		if present[v.Address] {
			if found {
				if err := st.Delete(k); err != nil {
					return err
				}
			}
			continue
		}
		if !found || a.Last+1 != h {
			a = Absence{Since: h}
		}
		a.Last = h
		if a.Last-a.Since+1 < limit {
			if err := st.Set(k, a); err != nil {
				return err
			}
			continue
		}
		if err := st.Delete(k); err != nil {
			return err
		}
		cur, err := validator.Load(st)
		if err != nil {
			return err
		}
		if i := cur.Find(v.Address); i < 0 || cur.TotalPower() == cur[i].Power {
			continue // gone already, or the last power the chain has
		}
		if err := validator.UnstakeAll(st, v.Address, staking); err != nil {
			return fmt.Errorf("unstake absent validator %s: %w", v.Address, err)
		}
	}
	return nil
}
