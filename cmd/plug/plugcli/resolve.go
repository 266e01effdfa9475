package plugcli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/keyring"
	"github.com/plugchain/plug/chain/node"
	"github.com/plugchain/plug/crosschain/shard"
	"github.com/plugchain/plug/testnet"
)

// nodeEnv is the environment variable with default node endpoints
// (comma-separated).
const nodeEnv = "PLUG_NODE"

// clientFlags returns the flags of commands that talk to a node: where the node
// is (--node, or --testnet and --chain) plus the keyring flags.
func clientFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringSliceFlag{
			Name: "node",
			Usage: "gateway URL of a node of the chain, e.g. http://127.0.0.1:26657 (repeat for failover; " +
				"default: $" + nodeEnv + ", else http.listen of HOME/config.toml)",
		},
		&cli.StringFlag{
			Name:  "testnet",
			Usage: "use the local testnet in this directory ('plug testnet up --dir DIR'): its nodes and its test keyring DIR/keys",
		},
		&cli.StringFlag{
			Name: "network",
			Usage: "talk to the logical (sharded) network declared in this file (e.g. DIR/network.toml of 'plug testnet up --shards N'): " +
				"tx transfer and query balance|supply route to the right shards; other commands need --chain SHARD",
		},
		&cli.StringFlag{
			Name:  "chain",
			Usage: "chain ID: picks the chain of a --testnet with several chains; otherwise checked against the node's",
		},
		&cli.DurationFlag{
			Name:  "request-timeout",
			Value: 10 * time.Second,
			Usage: "timeout of each request to a node",
		},
	}, keyringFlags()...)
}

// env is what a client command works with: the client, the chain and a
// keyring opener.
type env struct {
	c       *cli.Context
	out     *output
	client  *client.Client
	chainID string // from --chain or the testnet; "" until asked of the node
	// testnetKeys is DIR/keys for --testnet (unless --keyring-dir is given).
	testnetKeys string
	kr          *keyring.Keyring
	// shards is the client of the --network; client is then the --chain shard's
	// (or the first shard's, for the commands that route by account).
	shards *shard.Client
	// shown is the amount a tx command moves, for its output (amount.go).
	shown *shownAmount
	// names maps the keyring's addresses to their names, read once (amount.go).
	names map[crypto.Address]string
}

// routedCommands work on a whole --network without --chain.
var routedCommands = map[string]bool{"plug tx transfer": true, "plug query balance": true, "plug query balances": true,
	"plug query supply": true, "plug network place": true}

// newEnv resolves the endpoints and the chain of a client command.
func newEnv(c *cli.Context) (*env, error) {
	o, err := newOutput(c)
	if err != nil {
		return nil, err
	}
	e := &env{c: c, out: o, chainID: c.String("chain")}
	var endpoints []string
	nodes := c.StringSlice("node")
	dir := c.String("testnet")
	if f := c.String("network"); f != "" {
		if dir != "" || len(nodes) > 0 {
			return nil, errors.New("give --network, --testnet or --node, not several")
		}
		return e, e.useNetwork(f)
	}
	switch {
	case dir != "" && len(nodes) > 0:
		return nil, errors.New("give --node or --testnet, not both")
	case dir != "":
		m, err := testnet.LoadManifest(dir)
		if err != nil {
			return nil, err
		}
		ch, err := m.Chain(e.chainID)
		if err != nil {
			return nil, fmt.Errorf("%v (see `plug testnet status --dir %s`)", err, dir)
		}
		e.chainID = ch.ChainID
		endpoints = ch.Endpoints()
		if len(endpoints) == 0 {
			return nil, fmt.Errorf("chain %q of the testnet in %s has no nodes", ch.ChainID, dir)
		}
		base := m.Dir
		if base == "" {
			base = dir
		}
		e.testnetKeys = filepath.Join(base, testnet.KeyringDir)
	case len(nodes) > 0:
		for _, n := range nodes {
			endpoints = append(endpoints, strings.Split(n, ",")...)
		}
	case os.Getenv(nodeEnv) != "":
		endpoints = strings.Split(os.Getenv(nodeEnv), ",")
	default:
		home, err := homeDir(c)
		if err != nil {
			return nil, err
		}
		f, err := node.ReadConfig(filepath.Join(home, node.ConfigFile))
		if err != nil || f.HTTP.Listen == "" {
			return nil, fmt.Errorf("no node to talk to: pass --node http://HOST:PORT, --testnet DIR, set $%s, "+
				"or run it where --home has a node's config.toml", nodeEnv)
		}
		if strings.HasSuffix(f.HTTP.Listen, ":0") {
			return nil, fmt.Errorf("http.listen of %s picks a random port: pass --node with the address `plug node start` printed", home)
		}
		endpoints = []string{localURL(f.HTTP.Listen)}
	}
	opts := []client.Option{client.WithTimeout(c.Duration("request-timeout"))}
	if e.chainID != "" {
		opts = append(opts, client.WithChainID(e.chainID))
	}
	if e.client, err = client.New(endpoints, opts...); err != nil {
		return nil, err
	}
	return e, nil
}

// useNetwork loads the network file and connects to its shards. A network file
// beside a testnet manifest uses that testnet's keyring.
func (e *env) useNetwork(path string) error {
	net, err := shard.Load(path)
	if err != nil {
		return fmt.Errorf("%w (see docs/sharding.md)", err)
	}
	if e.shards, err = shard.NewClient(net, shard.WithClientOptions(client.WithTimeout(e.c.Duration("request-timeout")))); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(filepath.Join(dir, testnet.ManifestFile)); err == nil {
		e.testnetKeys = filepath.Join(dir, testnet.KeyringDir)
	}
	id := e.chainID
	if id == "" {
		if !routedCommands[commandPath(e.c)] {
			return fmt.Errorf("%s works on one chain: add --chain with one of the network's shards %v", commandPath(e.c), net.ChainIDs())
		}
		id = net.Shards[0].ChainID
	}
	if e.client, err = e.shards.Chain(id); err != nil {
		return err
	}
	e.chainID = id
	return nil
}

// localURL turns a listen address into a URL to dial (0.0.0.0 becomes 127.0.0.1).
func localURL(listen string) string {
	for _, any := range []string{"0.0.0.0:", "[::]:", ":"} {
		if strings.HasPrefix(listen, any) {
			return "http://127.0.0.1:" + strings.TrimPrefix(listen, any)
		}
	}
	return "http://" + listen
}

// ctx returns the command's context.
func (e *env) ctx() context.Context {
	if e.c.Context != nil {
		return e.c.Context
	}
	return context.Background()
}

// chain returns the chain ID, asking the node when no flag gave it, and checks
// that the node serves it.
func (e *env) chain() (string, error) {
	st, err := e.client.Status(e.ctx())
	if err != nil {
		return "", err
	}
	if e.chainID != "" && st.ChainID != e.chainID {
		return "", fmt.Errorf("%s serves chain %q, not %q: check --node / --chain", e.client.Endpoint(), st.ChainID, e.chainID)
	}
	e.chainID = st.ChainID
	return e.chainID, nil
}

// keyring opens the keyring: DIR/keys (test backend) for --testnet unless
// --keyring-dir is given, else the keyring flags.
func (e *env) keyring() (*keyring.Keyring, error) {
	if e.kr != nil {
		return e.kr, nil
	}
	var err error
	if e.testnetKeys != "" && !e.c.IsSet("keyring-dir") {
		e.kr, err = keyring.Open(e.testnetKeys, keyring.Test, func() ([]byte, error) {
			return nil, errors.New("the testnet keyring is unencrypted")
		})
	} else {
		e.kr, err = openKeyring(e.c, false)
	}
	return e.kr, err
}

// account resolves NAME-or-ADDRESS: 40 hex digits are an address, anything else
// a key name in the keyring.
func (e *env) account(flag, v string) (crypto.Address, string, error) {
	if v == "" {
		return crypto.Address{}, "", fmt.Errorf("missing --%s: give a key name or an address", flag)
	}
	if a, err := crypto.ParseAddress(v); err == nil {
		return a, "", nil
	}
	kr, err := e.keyring()
	if err != nil {
		return crypto.Address{}, "", err
	}
	info, err := kr.Info(v)
	if err != nil {
		return crypto.Address{}, "", fmt.Errorf("--%s %s: %w (or give a 40-hex-digit address)", flag, v, err)
	}
	return info.Address, info.Name, nil
}

// accountKey resolves NAME-or-ADDRESS to a public key (from the keyring).
func (e *env) accountKey(flag, v string) (crypto.PublicKey, error) {
	kr, err := e.keyring()
	if err != nil {
		return crypto.PublicKey{}, err
	}
	info, err := kr.Resolve(v)
	if err != nil {
		return crypto.PublicKey{}, fmt.Errorf("--%s %s: %w", flag, v, err)
	}
	return info.PublicKey, nil
}

// waitBar shows a spinner on a terminal while fn runs (never in json mode or
// when standard error is not a terminal).
func waitBar(o *output, msg string, fn func() error) error {
	if o.JSON() || o.errw != os.Stderr || !term.IsTerminal(int(os.Stderr.Fd())) {
		return fn()
	}
	bar := progressbar.NewOptions(-1,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(msg),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionShowElapsedTimeOnFinish(),
	)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				bar.Add(1)
			}
		}
	}()
	err := fn()
	close(done)
	bar.Finish()
	return err
}

// reportedError is an error whose result was already printed (e.g. a failed
// transaction in json mode): run prints the message on stderr only.
type reportedError struct{ error }
