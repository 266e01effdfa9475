package genesis

import (
	"crypto/elliptic"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/valset"
)

var (
	chainIDRule       = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)
	validatorNameRule = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
)

// maxTotalPower bounds the validators' total power, as valset.Set.Check does.
const maxTotalPower = math.MaxUint64 / 4

// checked is what validation derives from a document, for Changes.
type checked struct {
	set      valset.Set
	members  map[string][]crypto.Address          // role -> members, sorted
	balances map[string]map[crypto.Address]uint64 // asset -> balances
	supply   map[string]uint64                    // asset -> balances (+ bonds)
}

// Validate checks d against the rules of a chain (docs/genesis.md) and returns
// nil or an ErrorList of every problem found. reg is the chain's transform
// registry, which role transforms must be registered in; nil skips that check.
func (d *Doc) Validate(reg *transform.Registry) error {
	if errs, _ := d.check(reg); len(errs) > 0 {
		return errs
	}
	return nil
}

func (d *Doc) source() *source {
	if d.src != nil {
		return d.src
	}
	return &source{}
}

func (d *Doc) check(reg *transform.Registry) (ErrorList, *checked) {
	s := d.source()
	var errs ErrorList
	add := func(path, format string, args ...any) {
		errs = append(errs, s.errField(path, format, args...))
	}
	c := &checked{
		members:  map[string][]crypto.Address{},
		balances: map[string]map[crypto.Address]uint64{},
		supply:   map[string]uint64{},
	}

	if !chainIDRule.MatchString(d.ChainID) {
		add("chain_id", "must be 1-64 of a-z 0-9 and '-', got %q", d.ChainID)
	}
	if _, err := time.Parse(time.RFC3339, d.GenesisTime); err != nil {
		add("genesis_time", "must be an RFC 3339 time such as 2026-11-24T00:00:00Z, got %q", d.GenesisTime)
	}

	// Validators.
	switch n := len(d.Validators); {
	case n == 0:
		add("validators", "at least one validator is required")
	case n > valset.MaxValidators:
		add("validators", "%d validators, at most %d are allowed", n, valset.MaxValidators)
	}
	names := map[string]int{}
	addrs := map[crypto.Address]int{}
	var total uint64
	overflow := false
	for i, v := range d.Validators {
		p := fmt.Sprintf("validators[%d]", i)
		if !validatorNameRule.MatchString(v.Name) {
			add(p+".name", "must be 1-64 of A-Z a-z 0-9 . _ : - starting with a letter or digit, got %q", v.Name)
		} else if j, dup := names[v.Name]; dup {
			add(p+".name", "duplicate name %q (also validators[%d])", v.Name, j)
		} else {
			names[v.Name] = i
		}
		pk, field, err := checkKey(v.PubKey)
		if err != nil {
			add(p+".pub_key."+field, "%v", err)
		} else if j, dup := addrs[pk.Address()]; dup {
			add(p+".pub_key", "duplicate key (address %s, also validators[%d])", pk.Address(), j)
		} else {
			addrs[pk.Address()] = i
		}
		switch {
		case v.Power == 0:
			add(p+".power", "must be positive")
		case !overflow && (v.Power > maxTotalPower || total > maxTotalPower-v.Power):
			add(p+".power", "total power overflows: the sum of all powers must not exceed %d", uint64(maxTotalPower))
			overflow = true
		default:
			total += v.Power
		}
		if err == nil {
			c.set = append(c.set, valset.Validator{Address: pk.Address(), PubKey: pk, Power: v.Power})
		}
	}
	c.set.Sort()

	// Roles.
	var registered map[string]bool
	if reg != nil {
		registered = map[string]bool{}
		for _, n := range reg.Names() {
			registered[n] = true
		}
	}
	roles := map[string]int{}
	canGrant := false
	for i, r := range d.Roles {
		p := fmt.Sprintf("roles[%d]", i)
		if err := rbac.CheckRoleName(r.Name); err != nil {
			add(p+".name", "%v", err)
		} else if j, dup := roles[r.Name]; dup {
			add(p+".name", "duplicate role %q (also roles[%d])", r.Name, j)
		} else {
			roles[r.Name] = i
		}
		seen := map[string]int{}
		for j, t := range r.Transforms {
			tp := fmt.Sprintf("%s.transforms[%d]", p, j)
			switch k, dup := seen[t]; {
			case t == "":
				add(tp, "empty transform name")
			case dup:
				add(tp, "duplicate transform %q (also transforms[%d])", t, k)
			case registered != nil && !registered[t]:
				add(tp, "unknown transform %q: no such transform is registered", t)
			}
			seen[t] = j
		}
		var members []crypto.Address
		seenM := map[crypto.Address]int{}
		for j, m := range r.Members {
			mp := fmt.Sprintf("%s.members[%d]", p, j)
			a, err := crypto.ParseAddress(m)
			if err != nil {
				add(mp, "not an address: want 40 hex digits, got %q", m)
				continue
			}
			if k, dup := seenM[a]; dup {
				add(mp, "duplicate member %s (also members[%d])", a, k)
				continue
			}
			seenM[a] = j
			members = append(members, a)
		}
		slices.SortFunc(members, func(a, b crypto.Address) int { return strings.Compare(string(a[:]), string(b[:])) })
		c.members[r.Name] = members
		if slices.Contains(r.Transforms, rbac.TypeGrant) && (r.Public || len(members) > 0) {
			canGrant = true
		}
	}
	if !canGrant && d.StateImport == nil {
		add("roles", "no role with members may call %s, so the chain could never change its roles", rbac.TypeGrant)
	}

	// Assets.
	assets := map[string]int{}
	for i, a := range d.Assets {
		p := fmt.Sprintf("assets[%d]", i)
		if err := asset.CheckName(a.Name); err != nil {
			add(p+".name", "%v", err)
		} else if j, dup := assets[a.Name]; dup {
			add(p+".name", "duplicate asset %q (also assets[%d])", a.Name, j)
		} else {
			assets[a.Name] = i
		}
		switch err := rbac.CheckRoleName(a.Issuer); {
		case a.Issuer == "":
			add(p+".issuer", "missing: name the role whose members may issue and burn %s", a.Name)
		case err != nil:
			add(p+".issuer", "%v", err)
		default:
			if _, ok := roles[a.Issuer]; !ok {
				add(p+".issuer", "no role %q among roles", a.Issuer)
			}
		}
		keys := make([]string, 0, len(a.Balances))
		for k := range a.Balances {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		bal := map[crypto.Address]uint64{}
		first := map[crypto.Address]string{}
		var sum uint64
		over := false
		for _, k := range keys {
			bp := memberPath(p+".balances", k, false)
			amt := a.Balances[k]
			addr, err := crypto.ParseAddress(k)
			if err != nil {
				add(bp, "not an address: want 40 hex digits, got %q", k)
				continue
			}
			if o, dup := first[addr]; dup {
				add(bp, "duplicate address (also %q)", o)
				continue
			}
			first[addr] = k
			if amt == 0 {
				add(bp, "amount must be positive")
				continue
			}
			if sum > math.MaxUint64-amt {
				if !over {
					add(bp, "the sum of the balances of %s overflows", a.Name)
				}
				over = true
				continue
			}
			sum += amt
			bal[addr] = amt
		}
		supply, what := sum, "the sum of the balances"
		if d.StakingAsset != "" && a.Name == d.StakingAsset {
			what = "the sum of the balances and the bonded power"
			if supply > math.MaxUint64-total {
				add(p+".balances", "%s of %s overflows", what, a.Name)
				over = true
			}
			supply += total
		}
		if !over && a.MaxSupply > 0 && supply > a.MaxSupply {
			add(p+".max_supply", "%s, %d, exceeds max_supply %d", what, supply, a.MaxSupply)
		}
		c.balances[a.Name] = bal
		c.supply[a.Name] = supply
	}
	if d.StakingAsset != "" {
		if _, ok := assets[d.StakingAsset]; !ok {
			add("staking_asset", "no asset %q among assets", d.StakingAsset)
		}
	}
	if d.Accountability != nil {
		if err := d.Accountability.Check(); err != nil {
			add("accountability", "%v", err)
		}
	}
	if d.StateImport != nil {
		d.checkImport(add)
	}
	for _, sec := range Sections() {
		if p := d.parts[sec.Name]; p != nil {
			for _, pr := range p.Check() {
				path := sec.Name
				if pr.Field != "" {
					path += "." + pr.Field
				}
				add(path, "%v", pr.Err)
			}
		}
	}
	return s.finish(errs), c
}

// checkKey decodes and checks a validator key; on error, field is the failing
// field of pub_key ("scheme" or "key").
func checkKey(p PubKey) (crypto.PublicKey, string, error) {
	if p.Scheme == "" {
		return crypto.PublicKey{}, "scheme", fmt.Errorf("missing: want one of %s", schemeList())
	}
	if _, err := crypto.Lookup(p.Scheme); err != nil {
		return crypto.PublicKey{}, "scheme", fmt.Errorf("unknown scheme %q: want one of %s", p.Scheme, schemeList())
	}
	b, err := hex.DecodeString(p.Key)
	if err != nil {
		return crypto.PublicKey{}, "key", fmt.Errorf("not hex: %q", p.Key)
	}
	switch p.Scheme {
	case crypto.Ed25519:
		if err := crypto.Ed25519CheckPublicKey(b); err != nil {
			return crypto.PublicKey{}, "key", trimSentinel(err, crypto.ErrBadPublicKey)
		}
	case crypto.P256:
		if len(b) != crypto.P256PublicKeySize {
			return crypto.PublicKey{}, "key", fmt.Errorf("p256 public key is %d bytes, want %d (compressed)", len(b), crypto.P256PublicKeySize)
		}
		if b[0] != 2 && b[0] != 3 {
			return crypto.PublicKey{}, "key", fmt.Errorf("p256 public key starts with %#02x, want 0x02 or 0x03 (compressed)", b[0])
		}
		if x, _ := elliptic.UnmarshalCompressed(elliptic.P256(), b); x == nil {
			return crypto.PublicKey{}, "key", errors.New("p256 public key is not a curve point")
		}
	default:
		if len(b) == 0 {
			return crypto.PublicKey{}, "key", errors.New("empty key")
		}
	}
	return crypto.PublicKey{Scheme: p.Scheme, Key: b}, "", nil
}

func schemeList() string {
	var s []string
	for _, id := range crypto.Schemes() {
		s = append(s, strconv.Quote(string(id)))
	}
	return strings.Join(s, ", ")
}

// trimSentinel drops "sentinel: " from err's message.
func trimSentinel(err, sentinel error) error {
	return errors.New(strings.TrimPrefix(err.Error(), sentinel.Error()+": "))
}
