// Package genesis reads, checks and applies the genesis file of a chain: a JSON
// document naming the chain, its start time, its first validators, its RBAC roles,
// its assets with their initial balances and the optional sections that layers
// above chain/ register (Section; see docs/genesis.md).
//
// Parse reports syntax errors, values of the wrong type, unknown fields and
// duplicate keys; Validate checks the rules of the chain. Both return every problem
// they find as an ErrorList, each Error located by line, column and field path.
// Changes turns a valid document into the chain's initial state, and Init commits
// it into an empty store.
package genesis

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/evidence"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/validator"
)

// MaxFileSize is the largest genesis file Load reads.
const MaxFileSize = 64 << 20

// Doc is a genesis file.
type Doc struct {
	// ChainID names the chain: 1-64 of a-z 0-9 and '-'.
	ChainID string `json:"chain_id"`
	// GenesisTime is the chain's start time, RFC 3339.
	GenesisTime string `json:"genesis_time"`
	// StakingAsset, if set, names the asset whose bonded stake is voting power:
	// every validator's power is bonded stake of it.
	StakingAsset string `json:"staking_asset,omitempty"`
	// Validators is the first validator set.
	Validators []Validator `json:"validators"`
	// Roles are the RBAC roles.
	Roles []Role `json:"roles"`
	// Assets are the assets that exist from the start, with their balances.
	Assets []Asset `json:"assets"`
	// Accountability says what happens to validators that equivocate or stop
	// signing; absent, equivocators are jailed with their bond returned and
	// absence is not punished.
	Accountability *validator.Accountability `json:"accountability,omitempty"`
	// StateImport, if set, starts the chain from the state of a state export
	// instead of Roles, Assets and StakingAsset (which must then be empty): a
	// chain restarted under a new chain id from another chain's last agreed
	// state. See import.go.
	StateImport *StateImport `json:"state_import,omitempty"`

	src   *source         // where the fields are in the parsed file; nil if built in Go
	parts map[string]Part // the registered sections the document has, by name
}

// Validator is one member of the first validator set.
type Validator struct {
	// Name is for people (logs, tools); the chain knows validators by address.
	Name   string `json:"name"`
	PubKey PubKey `json:"pub_key"`
	Power  uint64 `json:"power"`
}

// PubKey is the JSON form of a crypto.PublicKey: its scheme and its key in hex.
type PubKey struct {
	Scheme crypto.SchemeID `json:"scheme"`
	Key    string          `json:"key"`
}

// FromPublicKey returns the JSON form of k.
func FromPublicKey(k crypto.PublicKey) PubKey {
	return PubKey{Scheme: k.Scheme, Key: hex.EncodeToString(k.Key)}
}

// PublicKey decodes p; it checks the hex, not the key (Validate does).
func (p PubKey) PublicKey() (crypto.PublicKey, error) {
	b, err := hex.DecodeString(p.Key)
	if err != nil {
		return crypto.PublicKey{}, fmt.Errorf("key is not hex: %v", err)
	}
	return crypto.PublicKey{Scheme: p.Scheme, Key: b}, nil
}

// Role is an RBAC role: the transforms its members may call, and its members.
type Role struct {
	Name string `json:"name"`
	// Public roles count every identity as a member.
	Public     bool     `json:"public,omitempty"`
	Transforms []string `json:"transforms"`
	// Members are account addresses, 40 hex digits.
	Members []string `json:"members,omitempty"`
}

// Asset is an asset defined at genesis, with its initial balances.
type Asset struct {
	Name string `json:"name"`
	// Issuer is the role whose members may issue and burn the asset.
	Issuer   string `json:"issuer"`
	Decimals uint8  `json:"decimals"`
	// MaxSupply caps the supply; 0 means no cap.
	MaxSupply uint64 `json:"max_supply"`
	// Balances maps addresses (40 hex digits) to amounts.
	Balances map[string]uint64 `json:"balances,omitempty"`
}

// Load reads and parses the genesis file at path; errors name the file as path.
func Load(path string) (*Doc, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("genesis: read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("genesis: %s is larger than %d bytes", path, MaxFileSize)
	}
	return Parse(path, data)
}

// Parse decodes a genesis file; name is used in error positions. The error, if
// any, is an ErrorList of syntax errors, values of the wrong type, unknown fields
// and duplicate keys. Parse does not check the chain's rules: call Validate.
func Parse(name string, data []byte) (*Doc, error) {
	src := &source{file: name, data: data, pos: map[string]int{}}
	var raw json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, src.finish(ErrorList{src.decodeError(err)})
	}
	f := newJSONForm()
	if errs := scan(src, f.typ); len(errs) > 0 {
		return nil, src.finish(errs)
	}
	v := reflect.New(f.typ)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v.Interface()); err != nil {
		return nil, src.finish(ErrorList{src.decodeError(err)})
	}
	d := &Doc{src: src}
	f.doc(v, d)
	return d, nil
}

// Time returns the genesis time in Unix milliseconds (0 if it does not parse).
func (d *Doc) Time() int64 {
	t, err := time.Parse(time.RFC3339, d.GenesisTime)
	if err != nil {
		return 0
	}
	return t.UnixMilli()
}

// Hash identifies the genesis: the hash, under the domain "plug/genesis", of the canonical
// encoding of the document in a normal form (time in milliseconds, lower-case
// hex, validators, roles, assets and lists sorted, each section in its own
// normal form), so that files differing only in layout, order or spelling of
// equal values hash alike. A document without a section hashes as it did
// before the section was registered.
func (d *Doc) Hash() hash.Hash {
	type hv struct {
		Name   string `cbor:"1,keyasint"`
		Scheme string `cbor:"2,keyasint"`
		Key    string `cbor:"3,keyasint"`
		Power  uint64 `cbor:"4,keyasint"`
	}
	type hr struct {
		Name       string   `cbor:"1,keyasint"`
		Public     bool     `cbor:"2,keyasint"`
		Transforms []string `cbor:"3,keyasint"`
		Members    []string `cbor:"4,keyasint"`
	}
	type ha struct {
		Name      string            `cbor:"1,keyasint"`
		Issuer    string            `cbor:"2,keyasint"`
		Decimals  uint8             `cbor:"3,keyasint"`
		MaxSupply uint64            `cbor:"4,keyasint"`
		Balances  map[string]uint64 `cbor:"5,keyasint"`
	}
	// The normal form is a map keyed by small integers, which the canonical
	// encoding writes as a struct with integer keys would be written, so that
	// sections can add their keys (Section.HashKey).
	var n struct {
		Validators []hv
		Roles      []hr
		Assets     []ha
	}
	n.Validators, n.Roles, n.Assets = []hv{}, []hr{}, []ha{}
	for _, v := range d.Validators {
		n.Validators = append(n.Validators, hv{v.Name, string(v.PubKey.Scheme), strings.ToLower(v.PubKey.Key), v.Power})
	}
	slices.SortFunc(n.Validators, func(a, b hv) int {
		return strings.Compare(a.Scheme+"\x00"+a.Key+"\x00"+a.Name, b.Scheme+"\x00"+b.Key+"\x00"+b.Name)
	})
	for _, r := range d.Roles {
		t := slices.Sorted(slices.Values(append([]string{}, r.Transforms...)))
		m := []string{}
		for _, a := range r.Members {
			m = append(m, strings.ToLower(a))
		}
		slices.Sort(m)
		n.Roles = append(n.Roles, hr{r.Name, r.Public, t, m})
	}
	slices.SortStableFunc(n.Roles, func(a, b hr) int { return strings.Compare(a.Name, b.Name) })
	for _, a := range d.Assets {
		bal := map[string]uint64{}
		for k, v := range a.Balances {
			bal[strings.ToLower(k)] += v
		}
		n.Assets = append(n.Assets, ha{a.Name, a.Issuer, a.Decimals, a.MaxSupply, bal})
	}
	slices.SortStableFunc(n.Assets, func(a, b ha) int { return strings.Compare(a.Name, b.Name) })
	m := map[int]any{1: d.ChainID, 2: d.Time(), 3: d.StakingAsset, 4: n.Validators, 5: n.Roles, 6: n.Assets}
	for _, s := range Sections() {
		if p := d.parts[s.Name]; p != nil {
			m[s.HashKey] = p.Normal()
		}
	}
	if d.StateImport != nil {
		m[importHashKey] = d.StateImport.normal()
	}
	return encoding.MustHash(hash.DomainGenesis, m)
}

// Default staking parameters of Default.
const (
	DefaultStakingAsset = "STAKE"
	DefaultPower        = 100       // each validator's bonded STAKE
	DefaultAdminStake   = 1_000_000 // the admin's free STAKE balance
)

// Default returns a genesis for chainID starting now (whole seconds, UTC) with
// these validators ("val-1", "val-2", ... with DefaultPower bonded STAKE each)
// and these roles:
//   - "admin" (member: admin): rbac/set-role, rbac/grant, rbac/revoke,
//     asset/create, asset/issue, asset/burn, validator/unjail; it is the issuer
//     of STAKE;
//   - "public" (everyone): asset/transfer;
//   - "validator" (members: the validators): validator/stake, validator/unstake,
//     validator/transfer-power, validator/evidence;
//   - the roles of every registered Section (Section.Roles), in the order the
//     sections were registered.
//
// The admin holds DefaultAdminStake STAKE. Callers may change the result (e.g.
// its GenesisTime) before writing it out.
func Default(chainID string, validators []crypto.PublicKey, admin crypto.Address) *Doc {
	d := &Doc{
		ChainID:      chainID,
		GenesisTime:  time.Now().UTC().Truncate(time.Second).Format(time.RFC3339),
		StakingAsset: DefaultStakingAsset,
	}
	var members []string
	for i, k := range validators {
		d.Validators = append(d.Validators, Validator{
			Name: fmt.Sprintf("val-%d", i+1), PubKey: FromPublicKey(k), Power: DefaultPower,
		})
		members = append(members, k.Address().String())
	}
	d.Roles = []Role{
		{Name: "admin", Members: []string{admin.String()}, Transforms: []string{
			rbac.TypeSetRole, rbac.TypeGrant, rbac.TypeRevoke,
			asset.TypeCreate, asset.TypeIssue, asset.TypeBurn, validator.TypeUnjail,
		}},
		{Name: "public", Public: true, Transforms: []string{asset.TypeTransfer}},
		{Name: "validator", Members: members, Transforms: []string{
			validator.TypeStake, validator.TypeUnstake, validator.TypeTransferPower, evidence.TypeEquivocation,
		}},
	}
	for _, s := range Sections() {
		if s.Roles != nil {
			s.Roles(d, admin, validators)
		}
	}
	d.Assets = []Asset{{
		Name: DefaultStakingAsset, Issuer: "admin",
		Balances: map[string]uint64{admin.String(): DefaultAdminStake},
	}}
	return d
}

// Marshal returns d as indented JSON, the form Parse reads.
func (d *Doc) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	return append(b, '\n'), nil
}
