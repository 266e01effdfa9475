package plugcli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/node"
)

// initOut is `plug init` in --output json.
type initOut struct {
	Home      string `json:"home"`
	ChainID   string `json:"chain_id"`
	Name      string `json:"name"`
	Validator bool   `json:"validator"`
	PeerID    string `json:"peer_id"`
	Address   string `json:"address"`
	PublicKey string `json:"public_key"`
	Config    string `json:"config"`
	Genesis   string `json:"genesis"`
	// GenesisWritten is false when an existing genesis.json was kept.
	GenesisWritten bool   `json:"genesis_written"`
	Admin          string `json:"admin,omitempty"`
}

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "create a node home: node key, config.toml and (for a new chain) genesis.json",
		UsageText: "plug init --home DIR --chain-id ID [--validator] [--moniker NAME] [--admin KEY]\n\n" +
			"plug keys add admin --home ./val-1 && plug init --home ./val-1 --chain-id dev-1 --validator\n" +
			"plug init --home /srv/plug/full-1 --chain-id bank-a --genesis ./genesis.json --peer /ip4/10.0.0.2/tcp/26656/p2p/12D3KooW…\n" +
			"plug init --home ./val-1 --chain-id dev-1 --validator --admin-address 5ebe0157c0457a0635abeb5b2cacf7f88bf96013",
		Description: "Writes HOME/node_key.json (a new ed25519 key, mode 0600), HOME/config.toml and, when HOME has no\n" +
			"genesis.json: a copy of --genesis FILE, or with --validator a new chain whose sole validator is this\n" +
			"node and whose admin (roles admin; issuer of STAKE) is the keyring key --admin (default \"admin\",\n" +
			"looked up in HOME/keys unless --keyring-dir says otherwise) or --admin-address. Edit the genesis\n" +
			"with `plug genesis ...` before the first start. An existing home is refused unless --force, which\n" +
			"rewrites config.toml and the node key but never touches genesis.json or chain data.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "chain-id", Usage: "chain ID: 1-64 of a-z 0-9 and '-'"},
			&cli.BoolFlag{Name: "validator", Usage: "this node signs votes (and is the sole validator of a new genesis)"},
			&cli.StringFlag{Name: "moniker", Usage: "node name in logs and status (default: the home directory's name)"},
			&cli.StringFlag{Name: "admin", Value: "admin", Usage: "keyring key that administers a new chain"},
			&cli.StringFlag{Name: "admin-address", Usage: "address that administers a new chain (instead of --admin)"},
			&cli.StringFlag{Name: "genesis", Usage: "copy this genesis file into HOME (joining an existing chain)"},
			&cli.StringFlag{Name: "p2p-listen", Value: node.DefaultP2PListen, Usage: "libp2p listen multiaddr"},
			&cli.StringFlag{Name: "http-listen", Value: node.DefaultHTTPListen, Usage: "gateway host:port (\"\" disables it)"},
			&cli.StringSliceFlag{Name: "peer", Usage: "peer address (from 'plug node id') to keep connected; repeatable"},
			&cli.BoolFlag{Name: "force", Usage: "overwrite config.toml and node_key.json of an existing home"},
		}, keyringFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected argument %q: `plug init` takes flags only", c.Args().First())
			}
			o, err := newOutput(c)
			if err != nil {
				return err
			}
			dir, err := homeDir(c)
			if err != nil {
				return err
			}
			chainID := c.String("chain-id")
			if chainID == "" {
				return errors.New("missing --chain-id: name the chain, e.g. --chain-id dev-1")
			}
			found := node.HomeExists(dir)
			for _, f := range found {
				if f == node.StateDB || f == node.ChainDB {
					return fmt.Errorf("%s holds chain data (%s): refusing to re-initialise it; "+
						"use another --home, or remove state.db and chain.db to start over", dir, strings.Join(found, ", "))
				}
			}
			if len(found) > 0 && !c.Bool("force") {
				return fmt.Errorf("%s is already a node home (%s): use another --home, or --force to overwrite "+
					"config.toml and node_key.json (the node gets a new identity)", dir, strings.Join(found, ", "))
			}
			genPath := filepath.Join(dir, node.GenesisFile)
			_, statErr := os.Stat(genPath)
			haveGenesis := statErr == nil

			key, err := node.GenerateNodeKey()
			if err != nil {
				return err
			}
			var gen *genesis.Doc
			var admin crypto.Address
			switch {
			case haveGenesis:
			case c.String("genesis") != "":
				if gen, err = genesis.Load(c.String("genesis")); err != nil {
					return err
				}
			case c.Bool("validator"):
				if admin, err = initAdmin(c); err != nil {
					return err
				}
				gen = genesis.Default(chainID, []crypto.PublicKey{key.Public()}, admin)
			}
			if gen != nil {
				if gen.ChainID != chainID {
					return fmt.Errorf("the genesis is for chain %q, not --chain-id %q", gen.ChainID, chainID)
				}
				if err := validateDoc(gen); err != nil {
					return err
				}
			}
			name := c.String("moniker")
			if name == "" {
				abs, _ := filepath.Abs(dir)
				name = filepath.Base(abs)
			}
			if gen != nil && !haveGenesis && c.String("genesis") == "" && len(gen.Validators) == 1 {
				if genesisName(name) {
					gen.Validators[0].Name = name
				}
			}
			f := node.DefaultFileConfig(name, chainID, c.Bool("validator"))
			f.P2P.Listen, f.HTTP.Listen, f.P2P.Peers = c.String("p2p-listen"), c.String("http-listen"), c.StringSlice("peer")
			if err := node.WriteHome(dir, f, gen, key); err != nil {
				return err
			}
			if gen != nil && gen.StateImport != nil && !filepath.IsAbs(gen.StateImport.File) {
				// A chain restarted from a state export: the export goes where the
				// home's genesis names it.
				if err := copyIfOther(gen.ImportPath(), filepath.Join(dir, gen.StateImport.File)); err != nil {
					return fmt.Errorf("copy the state export the genesis imports: %w", err)
				}
			}
			// The written home must load (except for a missing genesis).
			if gen != nil || haveGenesis {
				if _, err := node.LoadHome(dir, app.Registry(), app.Models()); err != nil {
					return fmt.Errorf("the new home does not load: %w", err)
				}
			}
			id, _ := node.PeerIDOf(key.Public())
			out := initOut{Home: dir, ChainID: chainID, Name: name, Validator: f.Validator, PeerID: id.String(),
				Address: key.Public().Address().String(), PublicKey: fmt.Sprintf("%x", key.Public().Key),
				Config: filepath.Join(dir, node.ConfigFile), Genesis: genPath, GenesisWritten: gen != nil}
			if !admin.IsZero() {
				out.Admin = admin.String()
			}
			if gen == nil && !haveGenesis {
				o.Warn("no genesis: copy the chain's genesis.json to %s before `plug node start` "+
					"(or run `plug init --validator --force` to start a new chain)", genPath)
			}
			return o.Emit(out, func(w io.Writer) error {
				g := "kept the existing one"
				if gen != nil {
					g = "written"
				} else if !haveGenesis {
					g = "MISSING"
				}
				return o.Fields([][2]string{{"home", dir}, {"chain", chainID}, {"name", name},
					{"validator", fmt.Sprint(f.Validator)}, {"peer id", out.PeerID}, {"node address", out.Address},
					{"config", out.Config}, {"genesis", genPath + " (" + g + ")"}, {"admin", out.Admin},
					{"next", "plug genesis show --home " + dir + "; plug node start --home " + dir}})
			})
		},
	}
}

// genesisName reports whether name fits a genesis validator name.
func genesisName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || (i > 0 && strings.ContainsRune("._:-", r))
		if !ok {
			return false
		}
	}
	return true
}

// initAdmin resolves the admin of a new chain: --admin-address, else the
// keyring key --admin.
func initAdmin(c *cli.Context) (crypto.Address, error) {
	if a := c.String("admin-address"); a != "" {
		addr, err := crypto.ParseAddress(a)
		if err != nil {
			return addr, fmt.Errorf("--admin-address %q: want 40 hex digits", a)
		}
		return addr, nil
	}
	kr, err := openKeyring(c, false)
	if err != nil {
		return crypto.Address{}, err
	}
	name := c.String("admin")
	info, err := kr.Resolve(name)
	if err != nil {
		return crypto.Address{}, fmt.Errorf("admin key: %w\n(create it with `plug keys add %s --home %s`, pick another with --admin, "+
			"or give --admin-address)", err, name, flagString(c, "home"))
	}
	return info.Address, nil
}
