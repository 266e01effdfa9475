package testnet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/keyring"
	"github.com/plugchain/plug/relay"
)

// RelayConfigFile is the relay's config inside its home.
const RelayConfigFile = "relay.toml"

// writeRelayHome writes DIR/relays/NAME/relay.toml for spec: the relay signs
// with its own key of the testnet keyring, follows every node of its chains
// and serves /metrics and /status on port.
func writeRelayHome(m *Manifest, spec RelaySpec, port int) (*Relay, error) {
	home := filepath.Join(m.Dir, "relays", spec.Name)
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := relay.Config{
		Name: spec.Name, DB: relay.DefaultDB, MetricsListen: listen,
		PollInterval: relay.Duration{Duration: 100 * time.Millisecond},
		RetryAfter:   relay.Duration{Duration: relay.DefaultRetryAfter},
		// Written out, not left at 0 (the default), so the file says what runs.
		ClientRefresh: relay.Duration{Duration: relay.DefaultClientRefresh},
		MaxInflight:   relay.DefaultMaxInflight,
		Key:           relay.KeyConfig{Name: spec.Name, Dir: filepath.Join(m.Dir, KeyringDir), Backend: string(keyring.Test)},
	}
	for _, id := range spec.Chains {
		c, err := m.Chain(id)
		if err != nil {
			return nil, err
		}
		var eps []string
		for _, n := range c.Nodes {
			eps = append(eps, n.HTTP)
		}
		cfg.Chains = append(cfg.Chains, relay.ChainConfig{ID: id, Endpoints: eps})
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Relay %s of the testnet in %s, written by plug testnet up. See docs/relay.md.\n", spec.Name, m.Dir)
	if err := toml.NewEncoder(&b).Encode(cfg); err != nil {
		return nil, err
	}
	path := filepath.Join(home, RelayConfigFile)
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		return nil, err
	}
	return &Relay{Name: spec.Name, Home: home, Config: path, Metrics: "http://" + listen, Chains: spec.Chains}, nil
}

// Connect creates, with the admin key of the testnet keyring, the on-chain
// light clients the relays keep current: for every relay and every ordered
// pair of its chains, the destination gets a client of the source trusting
// the source's block 1 (lc/create). Clients that exist are left alone, so
// Connect may run on every `up`. The chains must be committing blocks.
func Connect(ctx context.Context, m *Manifest) (created int, err error) {
	if len(m.Relays) == 0 {
		return 0, nil
	}
	kr, err := keyring.Open(filepath.Join(m.Dir, KeyringDir), keyring.Test, nil)
	if err != nil {
		return 0, err
	}
	admin, err := kr.Get(Admin)
	if err != nil {
		return 0, err
	}
	clients := map[string]*client.Client{}
	for _, c := range m.Chains {
		cl, err := client.New(c.Endpoints(), client.WithChainID(c.ChainID))
		if err != nil {
			return 0, err
		}
		clients[c.ChainID] = cl
	}
	done := map[[2]string]bool{}
	for _, r := range m.Relays {
		for _, dst := range r.Chains {
			for _, src := range r.Chains {
				if src == dst || done[[2]string{src, dst}] {
					continue
				}
				done[[2]string{src, dst}] = true
				ok, err := relay.CreateClient(ctx, clients[src], clients[dst], src, dst, admin, 1)
				if err != nil {
					return created, fmt.Errorf("light client of %s on %s: %w", src, dst, err)
				}
				if ok {
					created++
				}
			}
		}
	}
	return created, nil
}
