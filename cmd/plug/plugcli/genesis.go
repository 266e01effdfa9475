package plugcli

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/node"
)

// genesisCommand returns `plug genesis`.
func genesisCommand() *cli.Command {
	return &cli.Command{
		Name:  "genesis",
		Usage: "edit and check HOME/genesis.json before a chain starts",
		UsageText: "plug genesis COMMAND --home DIR [flags]\n\n" +
			"plug genesis add-asset --home ./val-1 --name USD --issuer admin --decimals 2\n" +
			"plug genesis add-account --home ./val-1 --account alice --asset USD --amount 1000\n" +
			"plug genesis validate --home ./val-1",
		Description: "Each edit re-validates the whole document (docs/genesis.md) and writes it only if valid;\n" +
			"errors point at file:line:column. Every node of a chain must start from the same file: finish\n" +
			"editing, then copy genesis.json to the other nodes' homes.",
		Subcommands: []*cli.Command{
			genesisAddValidatorCommand(),
			genesisAddAccountCommand(),
			genesisAddAssetCommand(),
			genesisAddRoleCommand(),
			genesisShowCommand(),
			genesisValidateCommand(),
			genesisFromExportCommand(),
		},
	}
}

// genesisPath returns --file, else HOME/genesis.json.
func genesisPath(c *cli.Context) (string, error) {
	if f := c.String("file"); f != "" {
		return f, nil
	}
	dir, err := homeDir(c)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, node.GenesisFile), nil
}

func genesisFileFlag() cli.Flag {
	return &cli.StringFlag{Name: "file", Usage: "the genesis file (default: HOME/genesis.json)"}
}

// validateDoc checks d against the built-in transforms.
func validateDoc(d *genesis.Doc) error {
	return d.Validate(app.Registry())
}

// editGenesis loads the genesis file, applies edit, validates the result as it
// will be written (so errors point into the new file) and writes it.
func editGenesis(c *cli.Context, edit func(d *genesis.Doc) (string, error)) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: see `%s --help`", c.Args().First(), commandPath(c))
	}
	o, err := newOutput(c)
	if err != nil {
		return err
	}
	path, err := genesisPath(c)
	if err != nil {
		return err
	}
	d, err := genesis.Load(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no genesis file at %s: create one with `plug init --validator`, or pass --file", path)
	}
	if err != nil {
		return err
	}
	what, err := edit(d)
	if err != nil {
		return err
	}
	data, err := d.Marshal()
	if err != nil {
		return err
	}
	nd, err := genesis.Parse(path+" (after the edit)", data)
	if err == nil {
		err = validateDoc(nd)
	}
	if err != nil {
		return fmt.Errorf("the edit makes the genesis invalid, nothing was written:\n%w", err)
	}
	if err := node.WriteGenesis(path, nd); err != nil {
		return err
	}
	return o.Emit(map[string]string{"file": path, "changed": what, "genesis_hash": nd.Hash().String()}, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "%s: %s\n", path, what)
		return err
	})
}

// parsePubKey reads "HEX" (ed25519) or "SCHEME:HEX".
func parsePubKey(s string) (crypto.PublicKey, error) {
	scheme := crypto.Ed25519
	if i := strings.IndexByte(s, ':'); i > 0 {
		scheme, s = crypto.SchemeID(s[:i]), s[i+1:]
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) == 0 {
		return crypto.PublicKey{}, fmt.Errorf("want a public key in hex (SCHEME:HEX for non-ed25519 keys)")
	}
	return crypto.PublicKey{Scheme: scheme, Key: b}, nil
}

// genesisAccount resolves --account NAME-or-ADDRESS with the keyring.
func genesisAccount(c *cli.Context, flag string) (string, error) {
	v := c.String(flag)
	if v == "" {
		return "", fmt.Errorf("missing --%s: give a key name or an address", flag)
	}
	if a, err := crypto.ParseAddress(v); err == nil {
		return a.String(), nil
	}
	kr, err := openKeyring(c, false)
	if err != nil {
		return "", err
	}
	info, err := kr.Info(v)
	if err != nil {
		return "", fmt.Errorf("--%s %s: %w (or give a 40-hex-digit address)", flag, v, err)
	}
	return info.Address.String(), nil
}

func genesisAddValidatorCommand() *cli.Command {
	return &cli.Command{
		Name:  "add-validator",
		Usage: "add a validator (its node key) to the first validator set",
		UsageText: "plug genesis add-validator --home DIR (--node-home DIR2 | --pubkey HEX) [--name NAME] [--power N]\n\n" +
			"plug genesis add-validator --home ./val-1 --node-home ./val-2 --name val-2\n" +
			"plug genesis add-validator --home ./val-1 --pubkey 8a88e3dd…6f5c --name bank-b --power 50",
		Description: "The validator votes with its node's key: give its home (--node-home, which reads node_key.json)\n" +
			"or the public key printed by `plug node id`. With a staking asset the validator's power is bonded\n" +
			"stake; it is also added to the \"validator\" role when that role exists.",
		Flags: append([]cli.Flag{
			genesisFileFlag(),
			&cli.StringFlag{Name: "node-home", Usage: "the validator's node home (reads its node_key.json)"},
			&cli.StringFlag{Name: "pubkey", Usage: "the validator's public key: HEX (ed25519) or SCHEME:HEX"},
			&cli.StringFlag{Name: "name", Usage: "validator name (default: val-N)"},
			&cli.Uint64Flag{Name: "power", Value: genesis.DefaultPower, Usage: "voting power"},
		}, keyringFlags()...),
		Action: func(c *cli.Context) error {
			return editGenesis(c, func(d *genesis.Doc) (string, error) {
				var pub crypto.PublicKey
				switch nh, pk := c.String("node-home"), c.String("pubkey"); {
				case nh != "" && pk != "":
					return "", errors.New("give --node-home or --pubkey, not both")
				case nh != "":
					k, err := node.ReadNodeKey(filepath.Join(nh, node.NodeKeyFile))
					if err != nil {
						return "", err
					}
					pub = k.Public()
				case pk != "":
					var err error
					if pub, err = parsePubKey(pk); err != nil {
						return "", fmt.Errorf("--pubkey: %w", err)
					}
				default:
					return "", errors.New("missing validator key: give --node-home DIR or --pubkey HEX (see `plug node id`)")
				}
				name := c.String("name")
				if name == "" {
					name = "val-" + strconv.Itoa(len(d.Validators)+1)
				}
				d.Validators = append(d.Validators, genesis.Validator{Name: name, PubKey: genesis.FromPublicKey(pub), Power: c.Uint64("power")})
				for i := range d.Roles {
					if d.Roles[i].Name == "validator" {
						d.Roles[i].Members = append(d.Roles[i].Members, pub.Address().String())
					}
				}
				return fmt.Sprintf("added validator %s (%s) with power %d", name, pub.Address(), c.Uint64("power")), nil
			})
		},
	}
}

func genesisAddAccountCommand() *cli.Command {
	return &cli.Command{
		Name:  "add-account",
		Usage: "give an account an initial balance of an asset",
		UsageText: "plug genesis add-account --home DIR --account ACCOUNT --asset NAME --amount N\n\n" +
			"plug genesis add-account --home ./val-1 --account alice --asset USD --amount 1000\n" +
			"plug genesis add-account --home ./val-1 --account 5ebe0157c0457a0635abeb5b2cacf7f88bf96013 --asset STAKE --amount 500",
		Description: "The amount is added to the account's balance (an account may appear once per asset).\n" +
			"The asset must exist in the genesis (see add-asset).",
		Flags: append([]cli.Flag{
			genesisFileFlag(),
			&cli.StringFlag{Name: "account", Usage: "key name (in the keyring) or address"},
			&cli.StringFlag{Name: "asset", Usage: "asset name"},
			amountFlag("balance to add"),
		}, keyringFlags()...),
		Action: func(c *cli.Context) error {
			return editGenesis(c, func(d *genesis.Doc) (string, error) {
				addr, err := genesisAccount(c, "account")
				if err != nil {
					return "", err
				}
				name := c.String("asset")
				if name == "" {
					return "", errors.New("missing --asset")
				}
				if c.String("amount") == "" {
					return "", errors.New("missing --amount: give a positive amount")
				}
				for i := range d.Assets {
					if d.Assets[i].Name == name {
						n, err := asset.ParseAmount(c.String("amount"), d.Assets[i].Decimals)
						if err != nil {
							return "", fmt.Errorf("--amount: %w", err)
						}
						if n == 0 {
							return "", errors.New("--amount must be positive")
						}
						if d.Assets[i].Balances == nil {
							d.Assets[i].Balances = map[string]uint64{}
						}
						for k := range d.Assets[i].Balances {
							if strings.EqualFold(k, addr) {
								addr = k
							}
						}
						bal := d.Assets[i].Balances[addr]
						if bal > math.MaxUint64-n {
							return "", fmt.Errorf("--amount: %s would hold more than %d %s", addr, uint64(math.MaxUint64), name)
						}
						d.Assets[i].Balances[addr] = bal + n
						return fmt.Sprintf("%s now holds %s", addr, withDisplay(bal+n, asset.Display(bal+n, d.Assets[i].Decimals, name))), nil
					}
				}
				return "", fmt.Errorf("the genesis has no asset %q: add it first with `plug genesis add-asset --name %s --issuer ROLE`", name, name)
			})
		},
	}
}

func genesisAddAssetCommand() *cli.Command {
	return &cli.Command{
		Name:  "add-asset",
		Usage: "define an asset that exists from the start",
		UsageText: "plug genesis add-asset --home DIR --name NAME --issuer ROLE [--decimals N] [--max-supply N]\n\n" +
			"plug genesis add-asset --home ./val-1 --name USD --issuer admin --decimals 2\n" +
			"plug genesis add-asset --home ./val-1 --name BOND-2030 --issuer issuer --max-supply 1000000",
		Flags: append([]cli.Flag{
			genesisFileFlag(),
			&cli.StringFlag{Name: "name", Usage: "asset name: 1-32 of A-Z a-z 0-9 . _ -"},
			&cli.StringFlag{Name: "issuer", Value: "admin", Usage: "role whose members may issue and burn it"},
			&cli.UintFlag{Name: "decimals", Usage: "decimal places for display"},
			maxSupplyFlag(),
		}, keyringFlags()...),
		Action: func(c *cli.Context) error {
			return editGenesis(c, func(d *genesis.Doc) (string, error) {
				name := c.String("name")
				if name == "" {
					return "", errors.New("missing --name: name the asset, e.g. --name USD")
				}
				for _, a := range d.Assets {
					if a.Name == name {
						return "", fmt.Errorf("the genesis already has asset %q", name)
					}
				}
				if c.Uint("decimals") > 255 {
					return "", errors.New("--decimals: at most 255")
				}
				limit, err := maxSupply(c, uint8(c.Uint("decimals")))
				if err != nil {
					return "", err
				}
				d.Assets = append(d.Assets, genesis.Asset{Name: name, Issuer: c.String("issuer"),
					Decimals: uint8(c.Uint("decimals")), MaxSupply: limit})
				return fmt.Sprintf("added asset %s (issuer role %s)", name, c.String("issuer")), nil
			})
		},
	}
}

func genesisAddRoleCommand() *cli.Command {
	return &cli.Command{
		Name:  "add-role",
		Usage: "define an RBAC role, or add transforms and members to an existing one",
		UsageText: "plug genesis add-role --home DIR --name ROLE [--transforms T1,T2] [--member ACCOUNT ...] [--public]\n\n" +
			"plug genesis add-role --home ./val-1 --name issuer --transforms asset/issue,asset/burn --member admin\n" +
			"plug genesis add-role --home ./val-1 --name admin --member alice",
		Flags: append([]cli.Flag{
			genesisFileFlag(),
			&cli.StringFlag{Name: "name", Usage: "role name: 1-64 of a-z 0-9 . _ : -"},
			&cli.StringSliceFlag{Name: "transforms", Usage: "transform types the members may call (comma-separated or repeated)"},
			&cli.StringSliceFlag{Name: "member", Usage: "member: key name or address (repeatable)"},
			&cli.BoolFlag{Name: "public", Usage: "every identity is a member"},
		}, keyringFlags()...),
		Action: func(c *cli.Context) error {
			return editGenesis(c, func(d *genesis.Doc) (string, error) {
				name := c.String("name")
				if name == "" {
					return "", errors.New("missing --name: name the role")
				}
				var trs, members []string
				for _, t := range c.StringSlice("transforms") {
					for _, p := range strings.Split(t, ",") {
						if p = strings.TrimSpace(p); p != "" {
							trs = append(trs, p)
						}
					}
				}
				for _, m := range c.StringSlice("member") {
					addr, err := crypto.ParseAddress(m)
					if err != nil {
						kr, kerr := openKeyring(c, false)
						if kerr != nil {
							return "", kerr
						}
						info, kerr := kr.Info(m)
						if kerr != nil {
							return "", fmt.Errorf("--member %s: %w (or give a 40-hex-digit address)", m, kerr)
						}
						addr = info.Address
					}
					members = append(members, addr.String())
				}
				for i := range d.Roles {
					r := &d.Roles[i]
					if r.Name != name {
						continue
					}
					for _, t := range trs {
						if !contains(r.Transforms, t) {
							r.Transforms = append(r.Transforms, t)
						}
					}
					for _, m := range members {
						if !contains(r.Members, m) {
							r.Members = append(r.Members, m)
						}
					}
					r.Public = r.Public || c.Bool("public")
					return fmt.Sprintf("updated role %s", name), nil
				}
				d.Roles = append(d.Roles, genesis.Role{Name: name, Public: c.Bool("public"), Transforms: trs, Members: members})
				return fmt.Sprintf("added role %s", name), nil
			})
		},
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func genesisShowCommand() *cli.Command {
	return &cli.Command{
		Name:  "show",
		Usage: "print the genesis file (JSON) and its hash",
		UsageText: "plug genesis show --home DIR\n\n" +
			"plug genesis show --home ./val-1\n" +
			"plug genesis show --home ./val-1 --output json | jq .assets",
		Flags: []cli.Flag{genesisFileFlag()},
		Action: func(c *cli.Context) error {
			o, err := newOutput(c)
			if err != nil {
				return err
			}
			path, err := genesisPath(c)
			if err != nil {
				return err
			}
			d, err := genesis.Load(path)
			if err != nil {
				return err
			}
			if o.JSON() {
				return writeJSON(o.w, d)
			}
			data, err := d.Marshal()
			if err != nil {
				return err
			}
			fmt.Fprintf(o.w, "# %s (hash %s)\n", path, d.Hash())
			_, err = o.w.Write(data)
			return err
		},
	}
}

func genesisValidateCommand() *cli.Command {
	return &cli.Command{
		Name:  "validate",
		Usage: "check the genesis file against the chain's rules",
		UsageText: "plug genesis validate --home DIR\n\n" +
			"plug genesis validate --home ./val-1\n" +
			"plug genesis validate --file ./genesis.json --output json",
		Flags: []cli.Flag{genesisFileFlag()},
		Action: func(c *cli.Context) error {
			o, err := newOutput(c)
			if err != nil {
				return err
			}
			path, err := genesisPath(c)
			if err != nil {
				return err
			}
			d, err := genesis.Load(path)
			if err == nil {
				err = validateDoc(d)
			}
			if err == nil && d.StateImport != nil {
				// The imported state must be there, unchanged and certified.
				_, _, err = d.LoadImport()
			}
			if err != nil {
				return fmt.Errorf("%s is not valid:\n%w", path, err)
			}
			res := map[string]any{"file": path, "valid": true, "chain_id": d.ChainID, "genesis_hash": d.Hash().String(),
				"validators": len(d.Validators), "roles": len(d.Roles), "assets": len(d.Assets)}
			if si := d.StateImport; si != nil {
				res["state_import"] = si
			}
			return o.Emit(res, func(w io.Writer) error {
				if si := d.StateImport; si != nil {
					_, err := fmt.Fprintf(w, "%s is valid: chain %s, %d validators, the state of chain %s at height %d (root %s, verified), hash %s\n",
						path, d.ChainID, len(d.Validators), si.ChainID, si.Height, si.StateRoot, d.Hash())
					return err
				}
				_, err := fmt.Fprintf(w, "%s is valid: chain %s, %d validators, %d roles, %d assets, hash %s\n",
					path, d.ChainID, len(d.Validators), len(d.Roles), len(d.Assets), d.Hash())
				return err
			})
		},
	}
}
