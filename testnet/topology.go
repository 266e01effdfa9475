package testnet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/plugchain/plug/chain/validator"
)

// Limits of a topology: a local testnet runs every node on this machine.
const (
	MaxChains     = 16
	MaxValidators = 32
	MaxFullNodes  = 16
	MaxRelays     = 8
)

// Topology declares a testnet: its chains, each with its validators and
// optional full nodes, and optionally the ports to use. It is read from a TOML
// or JSON file (see docs/testnet.md):
//
//	base_port = 26600 # optional; 0 or absent: free ports chosen by the system
//
//	[[chains]]
//	id = "alpha"
//	validators = 4
//
//	[[chains]]
//	id = "beta"
//	validators = 4
//	full_nodes = 1
//
//	[[relays]]          # optional; chains default to all of them
//	name = "relay-1"
//	chains = ["alpha", "beta"]
type Topology struct {
	// BasePort, when set, gives node k (counting every node of every chain in
	// order from 0) the HTTP port BasePort+2k and the P2P port BasePort+2k+1.
	// When 0, free ports on 127.0.0.1 are picked.
	BasePort int `json:"base_port,omitempty" toml:"base_port"`
	// Chains are the chains to run, at least one.
	Chains []ChainSpec `json:"chains" toml:"chains"`
	// Relays connect chains: every chain of a relay keeps an on-chain light
	// client of each other chain of it, created by the admin at `up`, and the
	// relay process keeps them current and carries crosschain proofs.
	Relays []RelaySpec `json:"relays,omitempty" toml:"relays"`
	// Network, when set, makes the chains the shards of one logical network of
	// that name (see docs/sharding.md): each account is funded on its home shard
	// only, and `up` writes DIR/network.toml for `--network`.
	Network string `json:"network,omitempty" toml:"network"`
}

// ShardTopology returns shards shard chains (shard-0, shard-1, ...) of validators
// validators each, forming the logical network "local", and, when there are two
// shards or more, one relay between all of them: `plug testnet up --shards N`.
func ShardTopology(shards, validators int) *Topology {
	t := DefaultTopology(shards, validators)
	for i := range t.Chains {
		t.Chains[i].ID = fmt.Sprintf("shard-%d", i)
	}
	t.Network = "local"
	return t
}

// RelaySpec is one relay process of a topology.
type RelaySpec struct {
	// Name is unique across the testnet's nodes and relays. Empty: relay-1, relay-2, ...
	Name string `json:"name,omitempty" toml:"name"`
	// Chains are the chain ids the relay connects, at least two. Empty: every chain.
	Chains []string `json:"chains,omitempty" toml:"chains"`
}

// ChainSpec is one chain of a topology.
type ChainSpec struct {
	// ID is the chain ID: 1-64 of a-z 0-9 and '-'. Empty: alpha, beta, ... by position.
	ID string `json:"id,omitempty" toml:"id"`
	// Validators is the number of validator nodes, at least 1.
	Validators int `json:"validators" toml:"validators"`
	// FullNodes is the number of non-validating nodes that follow the chain.
	FullNodes int `json:"full_nodes,omitempty" toml:"full_nodes"`
	// Accountability, when set, is the genesis' accountability section
	// (docs/genesis.md): slashing of equivocators, unstaking of absent validators.
	Accountability *validator.Accountability `json:"accountability,omitempty" toml:"accountability"`
}

// chainNames name the chains of a topology that leaves ids out.
var chainNames = []string{"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
	"iota", "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi"}

// DefaultTopology returns chains chains (named alpha, beta, ...) of
// validators validators each, and, when there are two chains or more, one
// relay between all of them: the topology of `plug testnet up` without a file.
func DefaultTopology(chains, validators int) *Topology {
	t := &Topology{}
	for i := 0; i < chains; i++ {
		t.Chains = append(t.Chains, ChainSpec{Validators: validators})
	}
	if chains > 1 {
		t.Relays = []RelaySpec{{}}
	}
	return t
}

// LoadTopology reads a topology file: JSON if it ends in .json (or starts
// with '{'), else TOML. It returns the topology normalised and checked.
func LoadTopology(path string) (*Topology, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	var t Topology
	if strings.EqualFold(filepath.Ext(path), ".json") || bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			return nil, fmt.Errorf("topology %s: %w", path, err)
		}
	} else {
		md, err := toml.Decode(string(b), &t)
		if err != nil {
			return nil, fmt.Errorf("topology %s: %w", path, err)
		}
		if un := md.Undecoded(); len(un) > 0 {
			return nil, fmt.Errorf("topology %s: unknown field %q (known: base_port, network, chains.id, chains.validators, chains.full_nodes, relays.name, relays.chains)", path, un[0].String())
		}
	}
	if err := t.Normalize(); err != nil {
		return nil, fmt.Errorf("topology %s: %w", path, err)
	}
	return &t, nil
}

var chainIDRe = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

// Normalize fills in missing chain ids and checks the topology.
func (t *Topology) Normalize() error {
	if len(t.Chains) == 0 {
		return fmt.Errorf("no chains: declare at least one [[chains]] with validators = N")
	}
	if len(t.Chains) > MaxChains {
		return fmt.Errorf("%d chains: at most %d run on one machine", len(t.Chains), MaxChains)
	}
	seen := map[string]bool{}
	nodes := 0
	for i := range t.Chains {
		c := &t.Chains[i]
		if c.ID == "" {
			c.ID = chainNames[i]
		}
		if !chainIDRe.MatchString(c.ID) {
			return fmt.Errorf("chain %d: bad id %q: use 1 to 64 of a-z 0-9 and -", i+1, c.ID)
		}
		if seen[c.ID] {
			return fmt.Errorf("chain id %q appears twice", c.ID)
		}
		seen[c.ID] = true
		if c.Validators < 1 || c.Validators > MaxValidators {
			return fmt.Errorf("chain %s: %d validators: use 1 to %d", c.ID, c.Validators, MaxValidators)
		}
		if c.FullNodes < 0 || c.FullNodes > MaxFullNodes {
			return fmt.Errorf("chain %s: %d full nodes: use 0 to %d", c.ID, c.FullNodes, MaxFullNodes)
		}
		nodes += c.Validators + c.FullNodes
	}
	if t.Network != "" && !chainIDRe.MatchString(t.Network) {
		return fmt.Errorf("network %q: use 1 to 64 of a-z 0-9 and -", t.Network)
	}
	if err := t.normalizeRelays(seen); err != nil {
		return err
	}
	ports := t.ports()
	if t.BasePort != 0 && (t.BasePort < 1024 || t.BasePort+ports > 65535) {
		return fmt.Errorf("base_port %d: the %d nodes and %d relays need ports %d to %d; pick a base port in 1024..%d, or leave it out for free ports",
			t.BasePort, nodes, len(t.Relays), t.BasePort, t.BasePort+ports-1, 65535-ports)
	}
	return nil
}

// ports is the number of TCP ports the testnet listens on: HTTP and P2P of
// every node, then the metrics port of every relay.
func (t *Topology) ports() int {
	n := len(t.Relays)
	for _, c := range t.Chains {
		n += 2 * (c.Validators + c.FullNodes)
	}
	return n
}

// normalizeRelays names the relays, fills in their chains and checks them;
// chains holds the topology's chain ids.
func (t *Topology) normalizeRelays(chains map[string]bool) error {
	if len(t.Relays) > MaxRelays {
		return fmt.Errorf("%d relays: at most %d", len(t.Relays), MaxRelays)
	}
	names := map[string]bool{}
	for i := range t.Relays {
		r := &t.Relays[i]
		if r.Name == "" {
			r.Name = fmt.Sprintf("relay-%d", i+1)
		}
		if !chainIDRe.MatchString(r.Name) {
			return fmt.Errorf("relay %d: bad name %q: use 1 to 64 of a-z 0-9 and -", i+1, r.Name)
		}
		if names[r.Name] || strings.Contains(r.Name, "-val-") || strings.Contains(r.Name, "-full-") {
			return fmt.Errorf("relay %d: name %q is taken (relay names are unique and differ from node names)", i+1, r.Name)
		}
		names[r.Name] = true
		if len(r.Chains) == 0 {
			for _, c := range t.Chains {
				r.Chains = append(r.Chains, c.ID)
			}
		}
		in := map[string]bool{}
		for _, id := range r.Chains {
			if !chains[id] {
				return fmt.Errorf("relay %s: no chain %q in the topology", r.Name, id)
			}
			if in[id] {
				return fmt.Errorf("relay %s: chain %q listed twice", r.Name, id)
			}
			in[id] = true
		}
		if len(r.Chains) < 2 {
			return fmt.Errorf("relay %s: connects %d chain: a relay needs at least two (declare a second [[chains]])", r.Name, len(r.Chains))
		}
	}
	return nil
}

// nodeName is the name of a chain's validator (full=false) or full node i (from 1).
func nodeName(chainID string, full bool, i int) string {
	if full {
		return fmt.Sprintf("%s-full-%d", chainID, i)
	}
	return fmt.Sprintf("%s-val-%d", chainID, i)
}
