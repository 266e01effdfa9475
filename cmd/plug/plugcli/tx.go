package plugcli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/node"
	"github.com/plugchain/plug/chain/transform"
)

// txCommand returns `plug tx`.
func txCommand() *cli.Command {
	return &cli.Command{
		Name:  "tx",
		Usage: "sign transactions and submit them to a chain",
		UsageText: "plug tx COMMAND --from KEY [flags]\n\n" +
			"plug tx transfer --node http://127.0.0.1:26657 --from alice --to bob --asset USD --amount 10 --wait\n" +
			"plug tx issue --testnet ./tn --chain alpha --from admin --asset USD --to bob --amount 1000 --wait",
		Description: "Every tx command signs with --from (a keyring key) or --node-key (a node's node_key.json, for\n" +
			"validator transactions), takes the signer's next nonce (counting its transactions still pending),\n" +
			"submits, and with --wait prints the committed result (id, height, code, error). The exit code is 1\n" +
			"when the transaction failed or was dropped. Accounts (--to, --member) are keyring names or\n" +
			"40-hex-digit addresses.\n\n" +
			"Amounts (--amount of an asset): a plain integer is in the asset's smallest unit (1234 = 12.34 USD\n" +
			"when USD has 2 decimals); a number with a point is in whole units (12.34), with at most the asset's\n" +
			"decimals after the point. Results show both: 12.34 USD (1234).\n\n" +
			"Each submitted transaction is kept in an outbox (DIR/outbox with --testnet, else HOME/outbox) until\n" +
			"its fate is known: the next tx command on the chain sends again any that no node has any more (the\n" +
			"same signed bytes: it cannot commit twice) and reports those dropped; `plug tx pending` shows them,\n" +
			"`plug tx resend ID` signs a dropped one anew.",
		Subcommands: []*cli.Command{
			txTransferCommand(),
			txIssueCommand(),
			txBurnCommand(),
			txCreateAssetCommand(),
			txGrantCommand(true),
			txGrantCommand(false),
			txSetRoleCommand(),
			txStakeCommand(true),
			txStakeCommand(false),
			txTransferPowerCommand(),
			txUnjailCommand(),
			txSubmitCommand(),
			txPendingCommand(),
			txResendCommand(),
		},
	}
}

// txFlags returns the flags every tx command has, then extra.
func txFlags(extra ...cli.Flag) []cli.Flag {
	fl := append(extra,
		&cli.StringFlag{Name: "from", Usage: "signing key: a name (or address) in the keyring"},
		&cli.StringFlag{Name: "node-key", Usage: "sign with a node's key instead: its node_key.json, or its home directory"},
		&cli.BoolFlag{Name: "wait", Usage: "wait until the transaction is committed and print its result"},
		&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "how long --wait waits (the node caps one wait at 60s)"},
		&cli.StringFlag{Name: "nonce", Usage: "signer nonce to use (default: the committed one, read from the node)"},
		&cli.StringFlag{Name: "memo", Usage: "free text recorded with the transaction"},
	)
	return append(fl, clientFlags()...)
}

func needString(c *cli.Context, name, what string) (string, error) {
	v := c.String(name)
	if v == "" {
		return "", fmt.Errorf("missing --%s: give %s", name, what)
	}
	return v, nil
}

// signer is who signs: a private key and a label for people.
type signer struct {
	key   crypto.PrivateKey
	label string
}

func (e *env) signer() (*signer, error) {
	from, nk := e.c.String("from"), e.c.String("node-key")
	switch {
	case from != "" && nk != "":
		return nil, errors.New("give --from or --node-key, not both")
	case nk != "":
		if st, err := os.Stat(nk); err == nil && st.IsDir() {
			nk = filepath.Join(nk, node.NodeKeyFile)
		}
		k, err := node.ReadNodeKey(nk)
		if err != nil {
			return nil, err
		}
		return &signer{key: k, label: nk}, nil
	case from == "":
		return nil, errors.New("missing --from: name the keyring key that signs (see `plug keys list`), or --node-key")
	}
	kr, err := e.keyring()
	if err != nil {
		return nil, err
	}
	info, err := kr.Resolve(from)
	if err != nil {
		return nil, err
	}
	k, err := kr.Get(info.Name)
	if err != nil {
		return nil, err
	}
	return &signer{key: k, label: info.Name}, nil
}

// txAction wraps a tx command: build makes the transform for the signer.
func txAction(build func(e *env, s *signer) (transform.Transform, error)) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.NArg() > 0 {
			return fmt.Errorf("unexpected argument %q: tx commands take flags only (see `%s --help`)", c.Args().First(), commandPath(c))
		}
		e, err := newEnv(c)
		if err != nil {
			return err
		}
		s, err := e.signer()
		if err != nil {
			return err
		}
		tr, err := build(e, s)
		if r, ok := err.(routed); ok {
			return r.err // carried out over the --network already
		}
		if err != nil {
			return err
		}
		return e.submit(s, tr, e.c.String("memo"))
	}
}

func txTransferCommand() *cli.Command {
	return &cli.Command{
		Name:  "transfer",
		Usage: "move an amount of an asset from the signer to an account (across shards with --network)",
		UsageText: "plug tx transfer --from KEY --to ACCOUNT --asset NAME --amount N [--wait]\n\n" +
			"plug tx transfer --node http://127.0.0.1:26657 --from alice --to bob --asset USD --amount 25 --wait\n" +
			"plug tx transfer --testnet ./tn --from alice --to bob --asset USD --amount 12.50 --wait   # 12.50 USD = 1250 with 2 decimals\n" +
			"plug tx transfer --testnet ./tn --from bob --to 3f2a…91c0 --asset USD --amount 5 --output json\n" +
			"plug tx transfer --network /tmp/sh/network.toml --from alice --to bob --asset USD --amount 5 --wait   # across shards if need be",
		Description: "With --network, the transfer goes to the payer's shard when both accounts live there, and\n" +
			"otherwise becomes a crosschain transaction coordinated by the payer's shard that settles on both\n" +
			"shards or neither (see docs/sharding.md); --wait waits until it is final.",
		Flags: txFlags(
			&cli.StringFlag{Name: "to", Usage: "receiving account: key name or address"},
			&cli.StringFlag{Name: "asset", Usage: "asset name"},
			amountFlag("amount to move"),
		),
		Action: txAction(func(e *env, s *signer) (transform.Transform, error) {
			to, _, err := e.account("to", e.c.String("to"))
			if err != nil {
				return nil, err
			}
			a, err := needString(e.c, "asset", "the asset name, e.g. USD")
			if err != nil {
				return nil, err
			}
			if e.shards != nil && !e.c.IsSet("chain") {
				return nil, routed{networkTransfer(e, s, to, a)}
			}
			n, err := e.assetAmount(e.client, a)
			if err != nil {
				return nil, err
			}
			return &asset.Transfer{Asset: a, From: s.key.Public().Address(), To: to, Amount: n}, nil
		}),
	}
}

// txSubmitCommand returns `plug tx submit`: any registered transform, its payload
// given as JSON — the way to call an application's own transforms.
func txSubmitCommand() *cli.Command {
	return &cli.Command{
		Name:  "submit",
		Usage: "sign and submit any registered transform, its payload given as JSON",
		UsageText: "plug tx submit --type TYPE --payload JSON|@FILE --from KEY [--wait]\n\n" +
			"plug tx submit --testnet ./tn --from alice --type asset/transfer \\\n" +
			"    --payload '{\"asset\":\"USD\",\"from\":\"<alice's address>\",\"to\":\"<bob's address>\",\"amount\":5}' --wait\n" +
			"plug-example tx submit --testnet ./tn --chain alpha --from carol --type oracle/publish --payload @price.json --wait",
		Description: "The payload is the transform's JSON form (its struct's json field names; addresses and hashes in hex).\n" +
			"Unknown fields are errors. `plug tx submit --list` prints the transform types this binary knows\n" +
			"(application transforms are added with builtin.Extend, see docs/tutorial.md).",
		Flags: txFlags(
			&cli.StringFlag{Name: "type", Usage: "transform type, e.g. asset/transfer"},
			&cli.StringFlag{Name: "payload", Usage: "the transform as JSON, or @FILE to read it from a file"},
			&cli.BoolFlag{Name: "list", Usage: "print the known transform types and exit"},
		),
		Action: func(c *cli.Context) error {
			if c.Bool("list") {
				o, err := newOutput(c)
				if err != nil {
					return err
				}
				names := app.Registry().Names()
				return o.Emit(names, func(w io.Writer) error {
					_, err := fmt.Fprintln(w, strings.Join(names, "\n"))
					return err
				})
			}
			return txAction(func(e *env, _ *signer) (transform.Transform, error) {
				typ, err := needString(e.c, "type", "the transform type (see --list)")
				if err != nil {
					return nil, err
				}
				tr, err := app.Registry().New(typ)
				if err != nil {
					return nil, fmt.Errorf("--type: %w (see `plug tx submit --list`)", err)
				}
				payload, err := needString(e.c, "payload", "the transform as JSON, or @FILE")
				if err != nil {
					return nil, err
				}
				if f, ok := strings.CutPrefix(payload, "@"); ok {
					b, err := os.ReadFile(f)
					if err != nil {
						return nil, fmt.Errorf("--payload: %w", err)
					}
					payload = string(b)
				}
				dec := json.NewDecoder(strings.NewReader(payload))
				dec.DisallowUnknownFields()
				if err := dec.Decode(tr); err != nil {
					return nil, fmt.Errorf("--payload is not a %s: %w", typ, err)
				}
				return tr, nil
			})(c)
		},
	}
}
