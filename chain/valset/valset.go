// Package valset holds a chain's validator set: voting power by validator key.
// Consensus counts votes against it and light clients follow its changes, so it
// lives apart from the transforms that change it (chain/validator): neither
// needs the transform machinery, RBAC or assets to weigh a vote.
package valset

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
)

// MaxValidators bounds the set, so a header's certificate stays small.
const MaxValidators = 150

// Validator is one member of the set.
type Validator struct {
	Address crypto.Address   `cbor:"1,keyasint" json:"address"`
	PubKey  crypto.PublicKey `cbor:"2,keyasint" json:"pub_key"`
	Power   uint64           `cbor:"3,keyasint" json:"power"`
}

// Set is a validator set, sorted by address.
type Set []Validator

// ErrBadSet: a validator set that breaks its invariants.
var ErrBadSet = errors.New("bad validator set")

// Hash returns the set's domain-separated hash, which headers carry.
func (s Set) Hash() hash.Hash { return encoding.MustHash(hash.DomainValidatorSet, s) }

// TotalPower is the sum of the set's power.
func (s Set) TotalPower() uint64 {
	var t uint64
	for _, v := range s {
		t += v.Power
	}
	return t
}

// Find returns the index of addr in s, or -1.
func (s Set) Find(addr crypto.Address) int {
	i := sort.Search(len(s), func(i int) bool { return string(s[i].Address[:]) >= string(addr[:]) })
	if i < len(s) && s[i].Address == addr {
		return i
	}
	return -1
}

// Check verifies the set's invariants: sorted unique addresses matching their keys,
// positive power, total power that cannot overflow, at most MaxValidators members.
func (s Set) Check() error {
	if len(s) == 0 {
		return fmt.Errorf("%w: empty", ErrBadSet)
	}
	if len(s) > MaxValidators {
		return fmt.Errorf("%w: %d validators, limit %d", ErrBadSet, len(s), MaxValidators)
	}
	var total uint64
	for i, v := range s {
		if v.PubKey.Address() != v.Address {
			return fmt.Errorf("%w: validator %d: address %s does not match its key", ErrBadSet, i, v.Address)
		}
		if v.Power == 0 {
			return fmt.Errorf("%w: validator %s has no power", ErrBadSet, v.Address)
		}
		if v.Power > math.MaxUint64/4 || total > math.MaxUint64/4-v.Power {
			return fmt.Errorf("%w: total power overflows", ErrBadSet)
		}
		total += v.Power
		if i > 0 && string(s[i-1].Address[:]) >= string(v.Address[:]) {
			return fmt.Errorf("%w: not sorted by address at %d", ErrBadSet, i)
		}
	}
	return nil
}

// Sort orders s by address.
func (s Set) Sort() {
	sort.Slice(s, func(i, j int) bool { return string(s[i].Address[:]) < string(s[j].Address[:]) })
}
