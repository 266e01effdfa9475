package testnet

import (
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/keyring"
	"github.com/plugchain/plug/chain/node"
)

// TestnetStateCache is the state-tree node cache of a testnet node (the
// default of a production node is state.DefaultNodeCache).
const TestnetStateCache = 400_000

// writeHome writes a node's home with chain/node's WriteHome: config.toml
// (listening on 127.0.0.1, every other node of the chain as a peer, the
// chain's full nodes allowed in), genesis.json and node_key.json.
func writeHome(p *plannedNode, chain []*plannedNode, doc *genesis.Doc) error {
	f := nodeConfig(p.Name, doc.ChainID, p.Validator, p.p2pP, p.HTTP)
	for _, o := range chain {
		if o == p {
			continue
		}
		f.P2P.Peers = append(f.P2P.Peers, o.P2P)
		if !o.Validator {
			f.P2P.AllowPeers = append(f.P2P.AllowPeers, o.peerID)
		}
	}
	return node.WriteHome(p.Home, f, doc, p.key)
}

// nodeConfig is the config.toml of a testnet node listening on 127.0.0.1.
func nodeConfig(name, chainID string, validator bool, p2pPort int, httpURL string) *node.FileConfig {
	f := node.DefaultFileConfig(name, chainID, validator)
	f.P2P.Listen = "/ip4/127.0.0.1/tcp/" + strconv.Itoa(p2pPort)
	f.HTTP.Listen = strings.TrimPrefix(httpURL, "http://")
	f.Log.Format = "plain" // node.log is a file, not a terminal
	// Every node of every chain shares this machine: a tenth of the default
	// state cache keeps a 16-node testnet under load within a few GiB.
	f.Storage.StateCacheNodes = TestnetStateCache
	// Every client of a testnet, relays and benchmarks included, comes from
	// 127.0.0.1: a per-address rate limit would throttle them all as one.
	f.HTTP.RateLimit = -1
	return f
}

// newNodeKey makes a node's key in the testnet keyring under the node's name,
// so that the validator can sign stake and power transactions (plug tx stake
// --from alpha-val-1), and returns it with its libp2p peer ID.
func newNodeKey(kr *keyring.Keyring, name string) (crypto.PrivateKey, peer.ID, error) {
	info, err := kr.Add(name, crypto.Ed25519)
	if err != nil {
		return nil, "", err
	}
	key, err := kr.Get(name)
	if err != nil {
		return nil, "", err
	}
	id, err := node.PeerIDOf(info.PublicKey)
	return key, id, err
}
