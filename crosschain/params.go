package crosschain

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/transform"
)

// DefaultMaxLock is Params.MaxLock on a chain that never set it, in
// milliseconds: a day.
const DefaultMaxLock = int64(24 * time.Hour / time.Millisecond)

// Params are a chain's crosschain parameters, stored at ParamsKey: set at
// genesis, changed by xchain/set-params.
type Params struct {
	// MaxLock bounds, in milliseconds, how far past this chain's block time an
	// XTx's deadline may be for a leg to be prepared here: the escrow of a leg
	// can then be held no longer than MaxLock plus the time its decision takes to
	// arrive (docs/crosschain.md, Deadlines and liveness).
	MaxLock int64 `cbor:"1,keyasint" json:"max_lock_ms"`
}

// millis writes a span of milliseconds as a duration ("24h0m0s"), or as a
// number of milliseconds when it is too long for a time.Duration.
func millis(ms int64) string {
	if ms > math.MaxInt64/int64(time.Millisecond) || ms < math.MinInt64/int64(time.Millisecond) {
		return strconv.FormatInt(ms, 10) + "ms"
	}
	return (time.Duration(ms) * time.Millisecond).String()
}

// DefaultParams are the parameters of a chain that stores none.
func DefaultParams() Params { return Params{MaxLock: DefaultMaxLock} }

// Check checks the parameters' values.
func (p Params) Check() error {
	if p.MaxLock <= 0 {
		return fmt.Errorf("%w: max lock %d ms (must be positive)", ErrMalformed, p.MaxLock)
	}
	return nil
}

// LoadParams reads the chain's parameters, DefaultParams when it stores none.
func LoadParams(st transform.State) (Params, error) {
	var p Params
	found, err := st.Get(ParamsKey, &p)
	switch {
	case err != nil:
		return Params{}, err
	case !found:
		return DefaultParams(), nil
	}
	return p, nil
}

// SetParams replaces the chain's crosschain parameters. Only the admin role
// lists it: the parameters bound what every trade on the chain may lock.
type SetParams struct {
	Params Params `cbor:"1,keyasint" json:"params"`
}

// Keys implements transform.Transform.
func (t *SetParams) Keys(*transform.Context) (r, w []string) { return nil, []string{ParamsKey} }

// Authorizations implements transform.Transform: the RBAC policy decides who may.
func (t *SetParams) Authorizations(*transform.Context) []crypto.Address { return nil }

// Verify implements transform.Transform.
func (t *SetParams) Verify(*transform.Context, transform.State) error {
	if err := t.Params.Check(); err != nil {
		return fmt.Errorf("%w: %w", transform.ErrInvalid, err)
	}
	return nil
}

// Apply implements transform.Transform.
func (t *SetParams) Apply(_ *transform.Context, st transform.State) error {
	return st.Set(ParamsKey, t.Params)
}
