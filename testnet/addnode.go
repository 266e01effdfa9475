package testnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/keyring"
	"github.com/plugchain/plug/chain/node"
	"github.com/plugchain/plug/chain/validator"
	"github.com/plugchain/plug/chain/valset"
)

// AddedNode is what AddNode reports: the node as the manifest holds it, and its
// key, to give it power with `plug tx transfer-power --to-pubkey PUBLIC_KEY`
// (or --to-node-key HOME, or --to NAME with the testnet's keyring).
type AddedNode struct {
	ChainID string `json:"chain_id"`
	Node
	PeerID    string `json:"peer_id"`
	Address   string `json:"address"`
	PublicKey string `json:"public_key"`
	// Peers are the nodes it dials: the chain's validators when it was added.
	Peers []string `json:"peers"`
}

var nodeNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// AddNode adds a node to chain chainID of the running testnet in dir and
// starts it: a new key (also in the testnet keyring, under name), a home with
// the chain's genesis and a config that dials the chain's current validators,
// recorded in the manifest. An empty name means CHAIN-node-N.
//
// The node is configured to vote (validator = true) but holds no power, so it
// starts as a full node, and no existing node is told about it: the validators
// refuse it (it is on no allow list) and it backs off, at height 0. Once a
// transfer of power to its key is committed, every validator's allow list
// includes it from that block on; its next attempt connects, it syncs the
// blocks it missed and votes. Nothing is restarted: this is how a validator
// moves to a new machine (docs/operator.md).
func AddNode(ctx context.Context, dir, chainID, name string, opts Options) (*AddedNode, error) {
	exe, err := opts.exe()
	if err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	if _, err := LoadManifest(dir); err != nil {
		return nil, err
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	m, err := LoadManifest(dir)
	if err != nil {
		return nil, err
	}
	m.Dir = dir
	c, err := m.Chain(chainID)
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = freeName(m, c.ChainID)
	}
	if !nodeNameRe.MatchString(name) {
		return nil, fmt.Errorf("node name %q: want 1-64 of a-z 0-9 -, starting with a letter or digit", name)
	}
	if _, _, err := m.Node(name); err == nil || m.Relay(name) != nil {
		return nil, fmt.Errorf("the testnet already has a node or relay %q: pick another name", name)
	}
	kr, err := keyring.Open(filepath.Join(dir, KeyringDir), keyring.Test, nil)
	if err != nil {
		return nil, err
	}
	if _, err := kr.Get(name); err == nil {
		return nil, fmt.Errorf("the testnet keyring already holds a key %q: pick another name", name)
	}
	var source *Node // a node of the chain whose genesis the new one copies
	for i := range c.Nodes {
		if _, err := os.Stat(filepath.Join(c.Nodes[i].Home, node.GenesisFile)); err == nil {
			source = &c.Nodes[i]
			break
		}
	}
	if source == nil {
		return nil, fmt.Errorf("chain %s has no node home with a %s to copy", c.ChainID, node.GenesisFile)
	}
	peers, err := currentValidators(ctx, c)
	if err != nil {
		return nil, err
	}

	key, id, err := newNodeKey(kr, name)
	if err != nil {
		return nil, err
	}
	ports, err := pickPorts(0, 2)
	if err != nil {
		return nil, err
	}
	n := Node{Name: name, Home: filepath.Join(dir, c.ChainID, name), HTTP: "http://127.0.0.1:" + strconv.Itoa(ports[0]),
		P2P: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", ports[1], id), Added: true}
	if found := node.HomeExists(n.Home); len(found) > 0 {
		return nil, fmt.Errorf("%s already holds %v: remove it or pick another name", n.Home, found)
	}
	f := nodeConfig(name, c.ChainID, true, ports[1], n.HTTP) // votes once it holds power
	var peerNames []string
	for _, p := range peers {
		f.P2P.Peers = append(f.P2P.Peers, p.P2P)
		peerNames = append(peerNames, p.Name)
	}
	if err := node.WriteHome(n.Home, f, nil, key); err != nil {
		return nil, err
	}
	// The very bytes of the chain's genesis file, not a re-encoding of it.
	gen, err := os.ReadFile(filepath.Join(source.Home, node.GenesisFile))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(n.Home, node.GenesisFile), gen, 0o644); err != nil {
		return nil, err
	}
	c.Nodes = append(c.Nodes, n)
	if err := m.Save(); err != nil {
		return nil, err
	}
	p, err := m.proc(name)
	if err != nil {
		return nil, err
	}
	pid, _, err := start(exe, p)
	if err != nil {
		return nil, errors.Join(err, m.Save())
	}
	*p.pid = pid
	if err := m.Save(); err != nil {
		return nil, err
	}
	_, added, _ := m.Node(name)
	return &AddedNode{ChainID: c.ChainID, Node: *added, PeerID: id.String(), Address: key.Public().Address().String(),
		PublicKey: fmt.Sprintf("%x", key.Public().Key), Peers: peerNames}, nil
}

// freeName returns CHAIN-node-N for the first N no node of m has.
func freeName(m *Manifest, chainID string) string {
	for i := 1; ; i++ {
		name := fmt.Sprintf("%s-node-%d", chainID, i)
		if _, _, err := m.Node(name); err != nil {
			return name
		}
	}
}

// currentValidators returns the chain's nodes whose keys are in its validator
// set, read from a running node.
func currentValidators(ctx context.Context, c *Chain) ([]Node, error) {
	cl, err := client.New(c.Endpoints(), client.WithChainID(c.ChainID), client.WithTimeout(5*time.Second))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	res, err := cl.State(ctx, 0, validator.SetKey, false)
	if err != nil {
		return nil, fmt.Errorf("read the validator set of %s (is the testnet running? `plug testnet up --dir DIR`): %w", c.ChainID, err)
	}
	var set valset.Set
	if err := res.Decode(&set); err != nil {
		return nil, err
	}
	var out []Node
	for _, n := range c.Nodes {
		k, err := node.ReadNodeKey(filepath.Join(n.Home, node.NodeKeyFile))
		if err != nil {
			continue
		}
		if set.Find(k.Public().Address()) >= 0 {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no node of %s in the testnet holds a key of its validator set", c.ChainID)
	}
	return out, nil
}
