package app

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/evidence"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/crosschain"
)

// CrosschainSection is the name of the genesis section of the crosschain
// parameters. Its hash key (7) is the one it had when the section was part of
// chain/genesis, so genesis hashes are unchanged.
const CrosschainSection = "crosschain"

func init() {
	genesis.RegisterSection(genesis.Section{
		Name:    CrosschainSection,
		HashKey: 7,
		New:     func() genesis.Part { return new(Crosschain) },
		Roles:   AddCrosschainRoles,
	})
}

// Crosschain is the genesis section of the crosschain parameters
// (crosschain.Params); without it a chain runs with crosschain.DefaultParams.
type Crosschain struct {
	// MaxLock is how far past a chain's block time a trade's deadline may be
	// for a leg to be prepared there, as a Go duration such as "24h".
	MaxLock string `json:"max_lock"`
}

// CrosschainOf returns d's crosschain section, or nil if it has none.
func CrosschainOf(d *genesis.Doc) *Crosschain {
	c, _ := d.Section(CrosschainSection).(*Crosschain)
	return c
}

// Params returns the parameters the section gives, or why it gives none.
func (c *Crosschain) Params() (crosschain.Params, error) {
	if c.MaxLock == "" {
		return crosschain.Params{}, errors.New("missing: a duration such as 24h")
	}
	d, err := time.ParseDuration(c.MaxLock)
	switch {
	case err != nil:
		return crosschain.Params{}, fmt.Errorf("must be a duration such as 24h or 90m, got %q", c.MaxLock)
	case d <= 0:
		return crosschain.Params{}, fmt.Errorf("must be positive, got %q", c.MaxLock)
	case d%time.Millisecond != 0:
		return crosschain.Params{}, fmt.Errorf("must be a whole number of milliseconds, got %q", c.MaxLock)
	}
	return crosschain.Params{MaxLock: d.Milliseconds()}, nil
}

// Check implements genesis.Part: the max lock must give Params.
func (c *Crosschain) Check() []genesis.Problem {
	if _, err := c.Params(); err != nil {
		return []genesis.Problem{{Field: "max_lock", Err: err}}
	}
	return nil
}

// Normal implements genesis.Part: the max lock in milliseconds (0 if it does
// not parse), so "90m" and "5400s" hash alike.
func (c *Crosschain) Normal() any {
	type normal struct {
		MaxLock int64 `cbor:"1,keyasint"`
	}
	p, _ := c.Params()
	return normal{MaxLock: p.MaxLock}
}

// State implements genesis.Part: the parameters at crosschain.ParamsKey.
func (c *Crosschain) State() []genesis.Entry {
	p, _ := c.Params() // the document is valid: Check found nothing
	return []genesis.Entry{{Key: crosschain.ParamsKey, Value: p}}
}

// Names of the roles AddCrosschainRoles adds.
const (
	RelayerRole = "relayer"
	TraderRole  = "trader"
)

// AddCrosschainRoles adds the roles of crosschain settlement to d: the "admin"
// role (if d has one) gains lc/create, lc/misbehaviour and xchain/set-params; a "relayer" role
// (members: admin and the validators) holds crosschain.RelayerTransforms; a public
// "trader" role lets every account trade (xchain/prepare) and carry decide and
// finish steps, which verify everything they are given. genesis.Default calls
// it, as the crosschain section's role hook.
func AddCrosschainRoles(d *genesis.Doc, admin crypto.Address, validators []crypto.PublicKey) {
	for i := range d.Roles {
		if d.Roles[i].Name != "admin" {
			continue
		}
		for _, t := range []string{crosschain.TypeLCCreate, crosschain.TypeLCMisbehaviour, crosschain.TypeSetParams} {
			if !slices.Contains(d.Roles[i].Transforms, t) {
				d.Roles[i].Transforms = append(d.Roles[i].Transforms, t)
			}
		}
	}
	members := []string{admin.String()}
	for _, k := range validators {
		if a := k.Address().String(); !slices.Contains(members, a) {
			members = append(members, a)
		}
	}
	d.Roles = append(d.Roles,
		genesis.Role{Name: RelayerRole, Members: members, Transforms: append(slices.Clone(crosschain.RelayerTransforms), evidence.TypeEquivocation)},
		genesis.Role{Name: TraderRole, Public: true, Transforms: []string{crosschain.TypePrepare, crosschain.TypeDecide, crosschain.TypeFinish, crosschain.TypeBatch}},
	)
}
