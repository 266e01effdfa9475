package testnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ManifestFile is the name of the manifest inside a testnet directory.
const ManifestFile = "testnet.json"

// KeyringDir is the unencrypted test keyring inside a testnet directory; it holds
// "admin" (admin and issuer roles on every chain) and the accounts alice, bob, carol.
const KeyringDir = "keys"

// Manifest describes a running (or stopped) local testnet: what `plug testnet up`
// wrote and what every client command's --testnet flag reads.
type Manifest struct {
	// Dir is the testnet directory (absolute).
	Dir    string  `json:"dir"`
	Chains []Chain `json:"chains"`
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
	// Validator tells validators from full nodes.
	Validator bool `json:"validator"`
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
	tmp := filepath.Join(m.Dir, ManifestFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(m.Dir, ManifestFile))
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
