package testnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/plugchain/plug/chain/atomicfile"
)

// ManifestFile is the name of the manifest inside a testnet directory.
const ManifestFile = "testnet.json"

// NetworkFile is the logical network file of a sharded testnet.
const NetworkFile = "network.toml"

// KeyringDir is the unencrypted test keyring inside a testnet directory; it holds
// "admin" (admin and issuer roles on every chain) and the accounts alice, bob, carol.
const KeyringDir = "keys"

// Manifest describes a running (or stopped) local testnet: what `plug testnet up`
// wrote and what every client command's --testnet flag reads.
type Manifest struct {
	// Dir is the testnet directory (absolute).
	Dir    string  `json:"dir"`
	Chains []Chain `json:"chains"`
	// Relays are the relay processes between the chains.
	Relays []Relay `json:"relays,omitempty"`
	// Network is the logical network file (DIR/network.toml) when the chains are
	// the shards of one network.
	Network string `json:"network,omitempty"`
}

// Relay is one relay process of the testnet (`plug relay start`).
type Relay struct {
	// Name is unique across the testnet, e.g. "relay-1"; it is also the name
	// of the relayer's key in the testnet keyring.
	Name string `json:"name"`
	// Home holds relay.toml, relay.db and relay.log.
	Home string `json:"home"`
	// Config is the relay's config file.
	Config string `json:"config"`
	// Metrics is the base URL of its /metrics and /status.
	Metrics string `json:"metrics"`
	// Chains are the chains it connects.
	Chains []string `json:"chains"`
	// PID is the process id while running, 0 when stopped.
	PID int `json:"pid"`
}

// Chain is one chain of the testnet.
type Chain struct {
	ChainID string `json:"chain_id"`
	Nodes   []Node `json:"nodes"`
}

// Node is one node process of a chain.
type Node struct {
	// Name is unique across the testnet, e.g. "alpha-val-1".
	Name string `json:"name"`
	// Home is the node's home directory (config, genesis, key, state.db, chain.db).
	Home string `json:"home"`
	// HTTP is the gateway's base URL, e.g. http://127.0.0.1:26701.
	HTTP string `json:"http"`
	// P2P is the node's full libp2p address.
	P2P string `json:"p2p"`
	// Validator tells validators from full nodes, as the testnet was created
	// (power moves at run time: the status reports what each node does now).
	Validator bool `json:"validator"`
	// Added marks a node added to the running testnet by AddNode: the other
	// nodes' configs do not name it, so it connects only once it holds power
	// (or is named in their allow_peers); Wait does not wait for it.
	Added bool `json:"added,omitempty"`
	// PID is the process id while running, 0 when stopped.
	PID int `json:"pid"`
}

// ErrNoTestnet: the directory holds no testnet manifest.
var ErrNoTestnet = errors.New("no testnet")

// LoadManifest reads DIR/testnet.json.
func LoadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s: start one with `plug testnet up --dir %s`", ErrNoTestnet, dir, dir)
	}
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, ManifestFile), err)
	}
	return &m, nil
}

// Save writes the manifest atomically.
func (m *Manifest) Save() error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(m.Dir, ManifestFile), b, 0o600)
}

// Chain returns the chain with id, or the only chain when id is empty.
func (m *Manifest) Chain(id string) (*Chain, error) {
	if id == "" {
		if len(m.Chains) == 1 {
			return &m.Chains[0], nil
		}
		var ids []string
		for _, c := range m.Chains {
			ids = append(ids, c.ChainID)
		}
		return nil, fmt.Errorf("the testnet has %d chains %v: pick one with --chain", len(m.Chains), ids)
	}
	for i := range m.Chains {
		if m.Chains[i].ChainID == id {
			return &m.Chains[i], nil
		}
	}
	return nil, fmt.Errorf("the testnet has no chain %q", id)
}

// proc is a process of the testnet, a node or a relay, as Up, Kill and
// Restart handle it.
type proc struct {
	name, home, log string
	pid             *int
	args            []string
}

// procs lists every process of m: relays first, so that stopping in this
// order never leaves a relay talking to stopped nodes.
func (m *Manifest) procs() []proc {
	var ps []proc
	for i := range m.Relays {
		r := &m.Relays[i]
		ps = append(ps, proc{name: r.Name, home: r.Home, log: RelayLogFile, pid: &r.PID,
			args: []string{"relay", "start", "--config", r.Config}})
	}
	for ci := range m.Chains {
		for ni := range m.Chains[ci].Nodes {
			n := &m.Chains[ci].Nodes[ni]
			ps = append(ps, proc{name: n.Name, home: n.Home, log: LogFile, pid: &n.PID,
				args: []string{"node", "start", "--home", n.Home}})
		}
	}
	return ps
}

// proc returns the process called name.
func (m *Manifest) proc(name string) (proc, error) {
	for _, p := range m.procs() {
		if p.name == name {
			return p, nil
		}
	}
	return proc{}, fmt.Errorf("the testnet has no node or relay %q: see `plug testnet status --dir %s`", name, m.Dir)
}

// Node returns the node called name and its chain.
func (m *Manifest) Node(name string) (*Chain, *Node, error) {
	for i := range m.Chains {
		for j := range m.Chains[i].Nodes {
			if m.Chains[i].Nodes[j].Name == name {
				return &m.Chains[i], &m.Chains[i].Nodes[j], nil
			}
		}
	}
	return nil, nil, fmt.Errorf("the testnet has no node %q: see `plug testnet status --dir %s`", name, m.Dir)
}

// Endpoints returns the HTTP gateways of a chain, running nodes first.
func (c *Chain) Endpoints() []string {
	var up, down []string
	for _, n := range c.Nodes {
		if n.PID != 0 {
			up = append(up, n.HTTP)
		} else {
			down = append(down, n.HTTP)
		}
	}
	return append(up, down...)
}

// Relay returns the relay called name, or nil.
func (m *Manifest) Relay(name string) *Relay {
	for i := range m.Relays {
		if m.Relays[i].Name == name {
			return &m.Relays[i]
		}
	}
	return nil
}
