package shard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/atomicfile"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/crosschain"
)

// DomainPlacement separates the placement hash from every other hash of PLUG.
const DomainPlacement = "plug/shard/placement"

// RuleHash is the default placement rule: a stable hash of the address.
const RuleHash = "hash"

// DefaultDeadline is how long a cross-shard transfer may take to prepare on both
// shards before the payer's shard aborts it.
const DefaultDeadline = 60 * time.Second

// ErrConfig: a network file that cannot be used as it is.
var ErrConfig = errors.New("bad network file")

// Network is a logical network: shard chains sharing one namespace of accounts
// and assets.
type Network struct {
	// Name names the network (for humans and metrics).
	Name string `toml:"name" json:"name"`
	// Assets are the network's assets. An account holding any of them on a shard
	// exists there (see Client.Home); aggregate queries default to them.
	Assets    []string  `toml:"assets" json:"assets"`
	Placement Placement `toml:"placement" json:"placement"`
	Shards    []Shard   `toml:"shards" json:"shards"`
	// Directory pins accounts (address -> shard chain ID), whatever the rule says.
	Directory map[string]string `toml:"directory,omitempty" json:"directory,omitempty"`
	Relays    []Relay           `toml:"relays,omitempty" json:"relays,omitempty"`
	// Deadline bounds a cross-shard transfer ("60s" when empty).
	Deadline string `toml:"deadline,omitempty" json:"deadline,omitempty"`
}

// Placement is the rule that maps an account to its shard.
type Placement struct {
	// Rule is "hash" (the default and, for now, the only rule).
	Rule string `toml:"rule" json:"rule"`
}

// Shard is one shard chain of the network.
type Shard struct {
	ChainID string `toml:"chain_id" json:"chain_id"`
	// Endpoints are gateway URLs of the shard's nodes, tried in order.
	Endpoints []string `toml:"endpoints" json:"endpoints"`
	// Generation is the placement generation the shard joined in: 0 for the
	// network's first shards, one more for each shard added later.
	Generation int `toml:"generation" json:"generation"`
}

// Relay names a relay and the shards it connects (documentation for operators:
// each relay runs with its own relay.toml).
type Relay struct {
	Name   string   `toml:"name" json:"name"`
	Shards []string `toml:"shards" json:"shards"`
}

// Load reads and checks a network file.
func Load(path string) (*Network, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("network file: %w", err)
	}
	n, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

// Parse decodes and checks a network file's contents. Unknown keys are errors, so
// that a typo does not silently change placement.
func Parse(b []byte) (*Network, error) {
	var n Network
	md, err := toml.Decode(string(b), &n)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("%w: unknown keys %s", ErrConfig, strings.Join(keys, ", "))
	}
	if err := n.Check(); err != nil {
		return nil, err
	}
	return &n, nil
}

// Encode returns the network file of n.
func (n *Network) Encode() ([]byte, error) {
	var sb strings.Builder
	if err := toml.NewEncoder(&sb).Encode(n); err != nil {
		return nil, fmt.Errorf("encode network file: %w", err)
	}
	return []byte(sb.String()), nil
}

// Save writes n to path (replacing it atomically).
func (n *Network) Save(path string) error {
	if err := n.Check(); err != nil {
		return err
	}
	b, err := n.Encode()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, b, 0o644); err != nil {
		return fmt.Errorf("write network file: %w", err)
	}
	return nil
}

// Check verifies the network's shape: known rule, unique shard IDs, generations
// that start at 0 and grow by one, known assets, pins and relays naming shards.
func (n *Network) Check() error {
	if n.Placement.Rule == "" {
		n.Placement.Rule = RuleHash
	}
	if n.Placement.Rule != RuleHash {
		return fmt.Errorf("%w: placement rule %q (want %q)", ErrConfig, n.Placement.Rule, RuleHash)
	}
	if len(n.Shards) == 0 {
		return fmt.Errorf("%w: no [[shards]]", ErrConfig)
	}
	seen := map[string]bool{}
	gen := 0
	for i, s := range n.Shards {
		if err := crosschain.CheckChainID(s.ChainID); err != nil {
			return fmt.Errorf("%w: shard %d: %v", ErrConfig, i, err)
		}
		if seen[s.ChainID] {
			return fmt.Errorf("%w: shard %q listed twice", ErrConfig, s.ChainID)
		}
		seen[s.ChainID] = true
		switch {
		case i == 0 && s.Generation != 0:
			return fmt.Errorf("%w: the first shard has generation %d, want 0", ErrConfig, s.Generation)
		case s.Generation < gen || s.Generation > gen+1:
			return fmt.Errorf("%w: shard %q has generation %d after generation %d: shards are listed in the order they joined, each generation one more than the last", ErrConfig, s.ChainID, s.Generation, gen)
		}
		gen = s.Generation
	}
	for _, a := range n.Assets {
		if err := asset.CheckName(a); err != nil {
			return fmt.Errorf("%w: %v", ErrConfig, err)
		}
	}
	for a, c := range n.Directory {
		if _, err := crypto.ParseAddress(a); err != nil {
			return fmt.Errorf("%w: directory: %v", ErrConfig, err)
		}
		if !seen[c] {
			return fmt.Errorf("%w: directory pins %s to %q, which is not a shard", ErrConfig, a, c)
		}
	}
	for _, r := range n.Relays {
		for _, c := range r.Shards {
			if !seen[c] {
				return fmt.Errorf("%w: relay %q names %q, which is not a shard", ErrConfig, r.Name, c)
			}
		}
	}
	if _, err := n.deadline(); err != nil {
		return err
	}
	return nil
}

func (n *Network) deadline() (time.Duration, error) {
	if n.Deadline == "" {
		return DefaultDeadline, nil
	}
	d, err := time.ParseDuration(n.Deadline)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%w: deadline %q (want a duration such as \"60s\")", ErrConfig, n.Deadline)
	}
	return d, nil
}

// ChainIDs returns the shards' chain IDs in the file's order.
func (n *Network) ChainIDs() []string {
	out := make([]string, len(n.Shards))
	for i, s := range n.Shards {
		out[i] = s.ChainID
	}
	return out
}

// Shard returns the shard with chain ID id.
func (n *Network) Shard(id string) (*Shard, bool) {
	i := slices.IndexFunc(n.Shards, func(s Shard) bool { return s.ChainID == id })
	if i < 0 {
		return nil, false
	}
	return &n.Shards[i], true
}

// Generation returns the network's latest placement generation.
func (n *Network) Generation() int { return n.Shards[len(n.Shards)-1].Generation }

// AddShard appends a shard in a new placement generation: from now on new
// accounts are placed over every shard, this one included, while accounts that
// exist stay where they are.
func (n *Network) AddShard(chainID string, endpoints []string) error {
	if _, ok := n.Shard(chainID); ok {
		return fmt.Errorf("%w: shard %q already in the network", ErrConfig, chainID)
	}
	n.Shards = append(n.Shards, Shard{ChainID: chainID, Endpoints: endpoints, Generation: n.Generation() + 1})
	if err := n.Check(); err != nil {
		n.Shards = n.Shards[:len(n.Shards)-1]
		return err
	}
	return nil
}

// HashShard returns the shard the hash rule of generation gen gives addr: the
// SHA-256 of the address (under DomainPlacement), as a big-endian number, modulo
// the number of shards of generations up to gen, indexing them in file order.
func (n *Network) HashShard(addr crypto.Address, gen int) string {
	var set []string
	for _, s := range n.Shards {
		if s.Generation <= gen {
			set = append(set, s.ChainID)
		}
	}
	h := hash.Sum(DomainPlacement, addr[:])
	return set[binary.BigEndian.Uint64(h[:8])%uint64(len(set))]
}

// Candidates returns the shards where addr may live, oldest placement first: its
// directory pin alone, or the hash rule's shard of each generation (without
// repeats). An account lives on the first candidate where it exists; an account
// that exists nowhere goes to the last one.
func (n *Network) Candidates(addr crypto.Address) []string {
	if c, ok := n.Directory[addr.String()]; ok {
		return []string{c}
	}
	var out []string
	for g := 0; g <= n.Generation(); g++ {
		if c := n.HashShard(addr, g); !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// Pin places addr on shard id through the directory.
func (n *Network) Pin(addr crypto.Address, id string) error {
	if _, ok := n.Shard(id); !ok {
		return fmt.Errorf("%w: %q is not a shard", ErrConfig, id)
	}
	if n.Directory == nil {
		n.Directory = map[string]string{}
	}
	n.Directory[addr.String()] = id
	return nil
}

// CrossTransfer is the crosschain transaction that moves amount of asset from
// from (on shard fromShard, which coordinates) to to (on shard toShard): an Out
// leg and its In leg. The deadline is on the payer shard's clock (Unix ms).
func CrossTransfer(fromShard, toShard, assetName string, from, to crypto.Address, amount uint64, deadline int64, nonce uint64) crosschain.XTx {
	return crosschain.XTx{
		Legs: []crosschain.Leg{
			{Chain: fromShard, Asset: assetName, From: from, To: to, Amount: amount, Kind: crosschain.Out},
			{Chain: toShard, Asset: assetName, From: from, To: to, Amount: amount, Kind: crosschain.In},
		},
		Coordinator: fromShard,
		Deadline:    deadline,
		Nonce:       nonce,
		Memo:        "cross-shard transfer",
	}
}
