package plugcli

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/settlement"
	"github.com/plugchain/plug/testnet"
)

// The environment of the multi-chain commands (settle, xchain): a client
// per chain, the keyring and the trade store.

// xenv is what a multi-chain command works with.
type xenv struct {
	*env
	clients map[string]*client.Client
	store   string
}

func newXEnv(c *cli.Context) (*xenv, error) { return newXEnvFor(c, true) }

// newXEnvFor is newXEnv; without needChains, a command that only signs may run
// with neither --testnet nor --node.
func newXEnvFor(c *cli.Context, needChains bool) (*xenv, error) {
	o, err := newOutput(c)
	if err != nil {
		return nil, err
	}
	x := &xenv{env: &env{c: c, out: o}, clients: map[string]*client.Client{}}
	opts := func(id string) []client.Option {
		return []client.Option{client.WithTimeout(c.Duration("request-timeout")), client.WithChainID(id)}
	}
	dir, nodes := c.String("testnet"), c.StringSlice("node")
	switch {
	case dir != "" && len(nodes) > 0:
		return nil, errors.New("give --testnet or --node CHAIN=URL, not both")
	case dir != "":
		if err := x.useTestnet(dir, c.Duration("request-timeout")); err != nil {
			return nil, err
		}
	case len(nodes) > 0:
		byChain := map[string][]string{}
		for _, n := range nodes {
			for _, p := range strings.Split(n, ",") {
				id, url, ok := strings.Cut(p, "=")
				if !ok || id == "" || url == "" {
					return nil, fmt.Errorf("--node %q: want CHAIN=URL, e.g. alpha=http://127.0.0.1:26657", p)
				}
				byChain[id] = append(byChain[id], url)
			}
		}
		for id, eps := range byChain {
			if x.clients[id], err = client.New(eps, opts(id)...); err != nil {
				return nil, err
			}
		}
		home, err := homeDir(c)
		if err != nil {
			return nil, err
		}
		x.store = filepath.Join(home, "settlements")
	case !needChains:
	default:
		return nil, errors.New("no chains to talk to: pass --testnet DIR (a `plug testnet up` directory) or --node CHAIN=URL for each chain")
	}
	if s := c.String("store"); s != "" {
		x.store = s
	}
	return x, nil
}

// useTestnet points x at the chains, the keyring and the trade store of the
// local testnet in dir; requests to its nodes time out after timeout.
func (x *xenv) useTestnet(dir string, timeout time.Duration) error {
	m, err := testnet.LoadManifest(dir)
	if err != nil {
		return err
	}
	base := m.Dir
	if base == "" {
		base = dir
	}
	for _, ch := range m.Chains {
		if x.clients[ch.ChainID], err = client.New(ch.Endpoints(), client.WithTimeout(timeout), client.WithChainID(ch.ChainID)); err != nil {
			return err
		}
	}
	x.testnetKeys = filepath.Join(base, testnet.KeyringDir)
	x.store = filepath.Join(base, "settlements")
	return nil
}

// readers returns the clients as settlement readers.
func (x *xenv) readers() map[string]settlement.Reader {
	out := map[string]settlement.Reader{}
	for id, c := range x.clients {
		out[id] = c
	}
	return out
}

// chainIDs returns the known chains, sorted.
func (x *xenv) chainIDs() []string {
	var ids []string
	for id := range x.clients {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// partyKey resolves a keyring name (or address) to its private key: parties sign.
func (x *xenv) partyKey(flag, v string) (crypto.PrivateKey, string, error) {
	if v == "" {
		return nil, "", fmt.Errorf("missing --%s: name a key of the keyring (see `plug keys list`)", flag)
	}
	kr, err := x.keyring()
	if err != nil {
		return nil, "", err
	}
	info, err := kr.Resolve(v)
	if err != nil {
		return nil, "", fmt.Errorf("--%s %s: %w: every party signs the trade, so its key must be in the keyring", flag, v, err)
	}
	k, err := kr.Get(info.Name)
	if err != nil {
		return nil, "", fmt.Errorf("--%s %s: %w", flag, v, err)
	}
	return k, info.Name, nil
}

// xchainRegistry is the builtin registry with the crosschain transforms.
func xchainRegistry() *transform.Registry {
	return app.Registry()
}
