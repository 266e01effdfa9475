package plugcli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/node"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/validator"
)

// The tx commands that administer a chain: assets (issue, burn, create),
// roles (grant, revoke, set-role) and validator power (stake, unstake,
// transfer-power).

func txIssueCommand() *cli.Command {
	return &cli.Command{
		Name:  "issue",
		Usage: "create new units of an asset in an account (the signer must hold the asset's issuer role)",
		UsageText: "plug tx issue --from KEY --asset NAME --to ACCOUNT --amount N [--wait]\n\n" +
			"plug tx issue --testnet ./tn --chain alpha --from admin --asset USD --to bob --amount 1000 --wait",
		Flags: txFlags(
			&cli.StringFlag{Name: "to", Usage: "receiving account: key name or address (default: the signer)"},
			&cli.StringFlag{Name: "asset", Usage: "asset name"},
			amountFlag("amount to issue"),
		),
		Action: txAction(func(e *env, s *signer) (transform.Transform, error) {
			to := s.key.Public().Address()
			if v := e.c.String("to"); v != "" {
				var err error
				if to, _, err = e.account("to", v); err != nil {
					return nil, err
				}
			}
			a, err := needString(e.c, "asset", "the asset name, e.g. USD")
			if err != nil {
				return nil, err
			}
			n, err := e.assetAmount(e.client, a)
			if err != nil {
				return nil, err
			}
			return &asset.Issue{Asset: a, To: to, Amount: n}, nil
		}),
	}
}

func txBurnCommand() *cli.Command {
	return &cli.Command{
		Name:  "burn",
		Usage: "destroy units of an asset from the signer's balance (the signer must hold the issuer role)",
		UsageText: "plug tx burn --from KEY --asset NAME --amount N [--wait]\n\n" +
			"plug tx burn --testnet ./tn --from admin --asset USD --amount 100 --wait",
		Flags: txFlags(&cli.StringFlag{Name: "asset", Usage: "asset name"}, amountFlag("amount to burn")),
		Action: txAction(func(e *env, s *signer) (transform.Transform, error) {
			a, err := needString(e.c, "asset", "the asset name, e.g. USD")
			if err != nil {
				return nil, err
			}
			n, err := e.assetAmount(e.client, a)
			if err != nil {
				return nil, err
			}
			return &asset.Burn{Asset: a, From: s.key.Public().Address(), Amount: n}, nil
		}),
	}
}

func txCreateAssetCommand() *cli.Command {
	return &cli.Command{
		Name:  "create-asset",
		Usage: "define a new asset (needs a role permitting asset/create, e.g. admin)",
		UsageText: "plug tx create-asset --from KEY --asset NAME --issuer ROLE [--decimals N] [--max-supply N] [--wait]\n\n" +
			"plug tx create-asset --testnet ./tn --from admin --asset EUR --issuer admin --decimals 2 --wait",
		Flags: txFlags(
			&cli.StringFlag{Name: "asset", Usage: "asset name: 1-32 of A-Z a-z 0-9 . _ -"},
			&cli.StringFlag{Name: "issuer", Usage: "role whose members may issue and burn the asset"},
			&cli.UintFlag{Name: "decimals", Usage: "decimal places for display (0-18)"},
			maxSupplyFlag(),
		),
		Action: txAction(func(e *env, s *signer) (transform.Transform, error) {
			a, err := needString(e.c, "asset", "the new asset's name")
			if err != nil {
				return nil, err
			}
			if err := asset.CheckName(a); err != nil {
				return nil, err
			}
			iss, err := needString(e.c, "issuer", "the issuer role, e.g. admin")
			if err != nil {
				return nil, err
			}
			d := e.c.Uint("decimals")
			if d > 18 {
				return nil, fmt.Errorf("--decimals %d: at most 18", d)
			}
			limit, err := maxSupply(e.c, uint8(d))
			if err != nil {
				return nil, err
			}
			return &asset.Create{Asset: a, Definition: asset.Definition{Issuer: iss, Decimals: uint8(d), MaxSupply: limit}}, nil
		}),
	}
}

func txGrantCommand(grant bool) *cli.Command {
	name, usage, verb := "grant", "make an account a member of a role", "grant"
	if !grant {
		name, usage, verb = "revoke", "remove an account from a role", "revoke"
	}
	return &cli.Command{
		Name:  name,
		Usage: usage + " (needs a role permitting rbac/" + verb + ", e.g. admin)",
		UsageText: "plug tx " + name + " --from KEY --role ROLE --member ACCOUNT [--wait]\n\n" +
			"plug tx " + name + " --testnet ./tn --from admin --role admin --member alice --wait",
		Flags: txFlags(
			&cli.StringFlag{Name: "role", Usage: "role name"},
			&cli.StringFlag{Name: "member", Usage: "account: key name or address"},
		),
		Action: txAction(func(e *env, s *signer) (transform.Transform, error) {
			role, err := needString(e.c, "role", "the role name")
			if err != nil {
				return nil, err
			}
			m, _, err := e.account("member", e.c.String("member"))
			if err != nil {
				return nil, err
			}
			if grant {
				return &rbac.Grant{Role: role, Member: m}, nil
			}
			return &rbac.Revoke{Role: role, Member: m}, nil
		}),
	}
}

func txSetRoleCommand() *cli.Command {
	return &cli.Command{
		Name:  "set-role",
		Usage: "define or redefine a role: the transforms its members may call",
		UsageText: "plug tx set-role --from KEY --role ROLE --transforms T1,T2 [--public] [--wait]\n\n" +
			"plug tx set-role --testnet ./tn --from admin --role issuer --transforms asset/issue,asset/burn --wait",
		Flags: txFlags(
			&cli.StringFlag{Name: "role", Usage: "role name"},
			&cli.StringSliceFlag{Name: "transforms", Usage: "transform types, e.g. asset/issue (comma-separated or repeated)"},
			&cli.BoolFlag{Name: "public", Usage: "every identity is a member"},
		),
		Action: txAction(func(e *env, s *signer) (transform.Transform, error) {
			role, err := needString(e.c, "role", "the role name")
			if err != nil {
				return nil, err
			}
			var trs []string
			for _, t := range e.c.StringSlice("transforms") {
				for _, p := range strings.Split(t, ",") {
					if p = strings.TrimSpace(p); p != "" {
						trs = append(trs, p)
					}
				}
			}
			return &rbac.SetRole{Role: role, Transforms: trs, Public: e.c.Bool("public")}, nil
		}),
	}
}

// stakingAsset returns --asset, else the chain's staking asset read from state.
func (e *env) stakingAsset() (string, error) {
	if a := e.c.String("asset"); a != "" {
		return a, nil
	}
	res, err := e.client.State(e.ctx(), 0, validator.StakingAssetKey, false)
	if err != nil {
		return "", fmt.Errorf("reading the staking asset: %w", err)
	}
	var a string
	if err := res.Decode(&a); err != nil || a == "" {
		return "", errors.New("the chain has no staking asset (genesis staking_asset): pass --asset")
	}
	return a, nil
}

func txStakeCommand(stake bool) *cli.Command {
	name, usage := "stake", "bond staking asset from the signer's balance as voting power (the signer votes with its key)"
	if !stake {
		name, usage = "unstake", "remove voting power from the signer and return the bond to its balance"
	}
	return &cli.Command{
		Name:  name,
		Usage: usage,
		UsageText: "plug tx " + name + " (--node-key HOME | --from KEY) --amount N [--asset NAME] [--wait]\n\n" +
			"plug tx " + name + " --node http://127.0.0.1:26657 --node-key ~/.plug --amount 50 --wait\n" +
			"plug tx " + name + " --testnet ./tn --node-key ./tn/alpha-val-1 --amount 10 --wait",
		Description: "Validators vote with their node key, so sign with --node-key (the node's home or its\n" +
			"node_key.json). The change of power takes effect at a later height. The staking asset is read from\n" +
			"the chain unless --asset names it.",
		Flags: txFlags(amountFlag("amount of power (= staking asset) to "+name),
			&cli.StringFlag{Name: "asset", Usage: "staking asset (default: the chain's)"}),
		Action: txAction(func(e *env, s *signer) (transform.Transform, error) {
			a, err := e.stakingAsset()
			if err != nil {
				return nil, err
			}
			n, err := e.assetAmount(e.client, a)
			if err != nil {
				return nil, err
			}
			if stake {
				return &validator.Stake{Amount: n, Asset: a}, nil
			}
			return &validator.Unstake{Amount: n, Asset: a}, nil
		}),
	}
}

func txTransferPowerCommand() *cli.Command {
	return &cli.Command{
		Name:  "transfer-power",
		Usage: "move voting power (and its bond) from the signing validator to another key",
		UsageText: "plug tx transfer-power --node-key HOME (--to KEY | --to-node-key HOME2 | --to-pubkey HEX) --amount N [--wait]\n\n" +
			"plug tx transfer-power --testnet ./tn --node-key ./tn/alpha-val-1 --to-node-key ./tn/alpha-val-2 --amount 10 --wait",
		Description: "The receiver votes with the key named: another node's key (--to-node-key, its home or\n" +
			"node_key.json), a keyring key (--to) or an ed25519 public key in hex (--to-pubkey).",
		Flags: txFlags(
			&cli.StringFlag{Name: "to", Usage: "receiving key: a name in the keyring"},
			&cli.StringFlag{Name: "to-node-key", Usage: "receiving node: its home directory or node_key.json"},
			&cli.StringFlag{Name: "to-pubkey", Usage: "receiving ed25519 public key, hex"},
			powerFlag("voting power to move (a whole number)"),
		),
		Action: txAction(func(e *env, s *signer) (transform.Transform, error) {
			n, err := needPower(e.c)
			if err != nil {
				return nil, err
			}
			var pub crypto.PublicKey
			switch to, tn, tp := e.c.String("to"), e.c.String("to-node-key"), e.c.String("to-pubkey"); {
			case tn != "":
				if st, err := os.Stat(tn); err == nil && st.IsDir() {
					tn = filepath.Join(tn, node.NodeKeyFile)
				}
				k, err := node.ReadNodeKey(tn)
				if err != nil {
					return nil, err
				}
				pub = k.Public()
			case tp != "":
				pk, err := parsePubKey(tp)
				if err != nil {
					return nil, fmt.Errorf("--to-pubkey: %w", err)
				}
				pub = pk
			case to != "":
				if pub, err = e.accountKey("to", to); err != nil {
					return nil, err
				}
			default:
				return nil, errors.New("missing receiver: give --to-node-key, --to or --to-pubkey")
			}
			return &validator.TransferPower{To: pub.Address(), ToKey: pub, Amount: n}, nil
		}),
	}
}

func txUnjailCommand() *cli.Command {
	return &cli.Command{
		Name:  "unjail",
		Usage: "let a validator jailed for equivocation hold power again (needs a role permitting validator/unjail, e.g. admin)",
		UsageText: "plug tx unjail --from KEY --address ACCOUNT [--wait]\n\n" +
			"plug tx unjail --testnet ./tn --from admin --address 3f2a...c9 --wait",
		Description: "A jailed validator lost its power and cannot stake or receive power; after unjail it may,\n" +
			"through validator/stake or a transfer-power. Its jail record stays (query state key jail/ADDRESS),\n" +
			"so evidence of the same offence is not punished twice.",
		Flags: txFlags(&cli.StringFlag{Name: "address", Usage: "the jailed account: key name or address"}),
		Action: txAction(func(e *env, s *signer) (transform.Transform, error) {
			a, _, err := e.account("address", e.c.String("address"))
			if err != nil {
				return nil, err
			}
			return &validator.Unjail{Address: a}, nil
		}),
	}
}
