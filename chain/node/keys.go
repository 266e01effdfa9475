package node

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	p2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"

	"github.com/plugchain/plug/chain/atomicfile"
	"github.com/plugchain/plug/chain/crypto"
)

// nodeKeyJSON is the content of node_key.json.
type nodeKeyJSON struct {
	Scheme crypto.SchemeID `json:"scheme"`
	// Seed is the 32-byte ed25519 seed in hex: the secret.
	Seed string `json:"seed"`
	// PublicKey and PeerID are for people (genesis, allow lists); they are checked
	// against the seed when read.
	PublicKey string `json:"public_key"`
	PeerID    string `json:"peer_id"`
}

// GenerateNodeKey returns a new random ed25519 node key.
func GenerateNodeKey() (crypto.PrivateKey, error) {
	return crypto.GenerateKey(crypto.Ed25519, rand.Reader)
}

// ReadNodeKey reads a node_key.json.
func ReadNodeKey(path string) (crypto.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, cfgErr(path, "", "no node key: create one with `plug init --home %s`, or restore it from your backup", filepath.Dir(path))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	var k nodeKeyJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&k); err != nil {
		return nil, cfgErr(path, "", "not a node key file: %v", err)
	}
	if k.Scheme != crypto.Ed25519 {
		return nil, cfgErr(path, "scheme", "%q: node keys are ed25519 (the libp2p identity needs it)", k.Scheme)
	}
	seed, err := hex.DecodeString(k.Seed)
	if err != nil || len(seed) != 32 {
		return nil, cfgErr(path, "seed", "want 64 hex digits (a 32-byte ed25519 seed)")
	}
	key, err := crypto.PrivateKeyFromBytes(crypto.Ed25519, seed)
	clear(seed)
	if err != nil {
		return nil, cfgErr(path, "seed", "%v", err)
	}
	if k.PublicKey != "" && !strings.EqualFold(k.PublicKey, hex.EncodeToString(key.Public().Key)) {
		return nil, cfgErr(path, "public_key", "does not match the seed: the file was altered; restore it from your backup")
	}
	return key, nil
}

// WriteNodeKey writes key to path with mode 0600, atomically.
func WriteNodeKey(path string, key crypto.PrivateKey) error {
	pub := key.Public()
	if pub.Scheme != crypto.Ed25519 {
		return fmt.Errorf("node key must be ed25519, got %s", pub.Scheme)
	}
	id, err := peerID(pub)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(nodeKeyJSON{Scheme: crypto.Ed25519, Seed: hex.EncodeToString(key.Bytes()),
		PublicKey: hex.EncodeToString(pub.Key), PeerID: id.String()}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o600)
}

// PeerIDOf returns the libp2p peer ID of an ed25519 node key.
func PeerIDOf(pub crypto.PublicKey) (peer.ID, error) { return peerID(pub) }

// ReadPrivateNetworkKey reads a libp2p pre-shared key: the swarm.key format
// ("/key/swarm/psk/1.0.0/", "/base16/", hex) or 64 hex digits alone.
func ReadPrivateNetworkKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if bytes.HasPrefix(data, []byte("/key/swarm/psk/")) {
		psk, err := pnet.DecodeV1PSK(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		return psk, nil
	}
	psk, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(psk) != 32 {
		return nil, fmt.Errorf("%s: want 64 hex digits (32 random bytes) or a libp2p swarm.key", path)
	}
	return psk, nil
}

// peerID derives the libp2p peer ID of an ed25519 PLUG key.
func peerID(pub crypto.PublicKey) (peer.ID, error) {
	if pub.Scheme != crypto.Ed25519 {
		return "", fmt.Errorf("peer identity needs an ed25519 key, got %s", pub.Scheme)
	}
	k, err := p2pcrypto.UnmarshalEd25519PublicKey(pub.Key)
	if err != nil {
		return "", err
	}
	return peer.IDFromPublicKey(k)
}
