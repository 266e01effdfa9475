package plugcli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/node"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/chain/validator"
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

func amountFlag(usage string) cli.Flag {
	return &cli.Uint64Flag{Name: "amount", Usage: usage}
}

func needAmount(c *cli.Context) (uint64, error) {
	if !c.IsSet("amount") || c.Uint64("amount") == 0 {
		return 0, errors.New("missing --amount: give a positive whole number of the asset's smallest unit")
	}
	return c.Uint64("amount"), nil
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

// routed is what a tx command's build returns when it carried the transaction
// out itself over a --network: err is its outcome, nil on success.
type routed struct{ err error }

func (r routed) Error() string { return fmt.Sprint("routed over the network: ", r.err) }

// txOut is a submitted transaction in --output json.
type txOut struct {
	ID      string `json:"id"`
	ChainID string `json:"chain_id"`
	Type    string `json:"type"`
	Signer  string `json:"signer"`
	Nonce   uint64 `json:"nonce"`
	// Status is pending (submitted, not waited for or not committed in time),
	// ok, failed, rejected, or dropped (its nonce was used by another
	// transaction: it will never commit).
	Status string `json:"status"`
	Height uint64 `json:"height,omitempty"`
	Index  uint32 `json:"index,omitempty"`
	Code   *int   `json:"code,omitempty"`
	Error  string `json:"error,omitempty"`
	// Skipped lists the parts of a batch that did not apply, and why.
	Skipped []transform.Skip `json:"skipped,omitempty"`
	Node    string           `json:"node"`
}

// nonceRetries is how many times a command signs a transaction again with the
// next nonce when a node refuses it for a nonce conflict (another process of
// the same signer took the nonce first); a refused transaction was never
// admitted, so signing another is safe.
const nonceRetries = 5

func (e *env) submit(s *signer, tr transform.Transform, memo string) error {
	chainID, err := e.chain()
	if err != nil {
		return err
	}
	pub := s.key.Public()
	ob, err := e.outbox()
	if err != nil {
		return err
	}
	e.reconcile(ob, chainID)
	fixed := e.c.String("nonce") != ""
	var nonce uint64
	if fixed {
		if nonce, err = strconv.ParseUint(e.c.String("nonce"), 10, 64); err != nil {
			return fmt.Errorf("--nonce %q: want a whole number", e.c.String("nonce"))
		}
	}
	wait := e.c.Bool("wait")
	timeout := e.c.Duration("timeout")
	var t *tx.Tx
	var res *client.SubmitResult
	for attempt := 0; ; attempt++ {
		if !fixed {
			if nonce, err = ob.Next(e.ctx(), e.client, chainID, pub.Address()); err != nil {
				return fmt.Errorf("reading the nonce of %s: %w", pub.Address(), err)
			}
		}
		if t, err = tx.New(app.Registry(), chainID, tr, tx.Signer{Key: pub, Nonce: nonce}); err != nil {
			return err
		}
		t.Body.Memo = memo
		if err := t.Sign(s.key); err != nil {
			return err
		}
		// Recorded before it is sent: if this process dies now, the next
		// `plug tx` finds it and sends it (exactly once, by its nonce).
		if err := ob.Put(t); err != nil {
			return err
		}
		err = waitBar(e.out, "waiting for the commit", func() error {
			var err error
			res, err = e.client.Submit(e.ctx(), t, wait, min(timeout, 60*time.Second))
			return err
		})
		var api *client.APIError
		if err != nil && errors.As(err, &api) && !errors.Is(err, client.ErrDropped) {
			ob.Forget(chainID, mustTxID(t)) // refused: never admitted
		}
		if errors.Is(err, client.ErrNonceConflict) && !fixed && attempt < nonceRetries {
			continue
		}
		break
	}
	id := mustTxID(t)
	var dropped *client.DroppedError
	switch {
	case errors.As(err, &dropped):
	case errors.Is(err, client.ErrBusy):
		return fmt.Errorf("%w: the node's mempool is full, try again shortly", err)
	case client.IsConnError(err):
		return fmt.Errorf("%w: the transaction %s may or may not have reached a node; it is kept in the outbox %s, and the next "+
			"`plug tx` of this chain (or `plug tx pending`) sends it again if no node has it", err, id, ob.Dir())
	case err != nil:
		return err
	case wait && res.Result == nil:
		err = waitBar(e.out, "waiting for the commit", func() error {
			r, werr := e.client.Await(e.ctx(), t, max(0, timeout-60*time.Second))
			res.Result = r
			if errors.As(werr, &dropped) || errors.Is(werr, client.ErrNotFound) {
				return nil
			}
			return werr
		})
		if err != nil {
			return err
		}
	}
	if dropped != nil {
		ob.Settle(t, nil, dropped)
	} else if res.Result != nil {
		ob.Settle(t, res.Result, nil)
	}
	out := txOut{ID: id.String(), ChainID: chainID, Type: t.Body.Type, Signer: pub.Address().String(),
		Nonce: nonce, Status: "pending", Node: e.client.Endpoint()}
	if dropped != nil {
		out.Status, out.Error = gateway.TxDropped, dropped.Status.Reason
	} else if r := res.Result; r != nil {
		code := int(r.Code)
		out.Status, out.Height, out.Index, out.Code, out.Error, out.Skipped = r.Code.String(), r.Height, r.Index, &code, r.Error, r.Skipped
	}
	err = e.out.Emit(out, func(w io.Writer) error {
		pairs := [][2]string{{"id", out.ID}, {"type", out.Type}, {"signer", s.label + " (" + out.Signer + ")"},
			{"nonce", strconv.FormatUint(nonce, 10)}, {"status", out.Status}}
		switch {
		case dropped != nil:
			pairs = append(pairs, [2]string{"reason", out.Error})
		case res.Result != nil:
			pairs = append(pairs, [2]string{"height", strconv.FormatUint(out.Height, 10)})
			if out.Error != "" {
				pairs = append(pairs, [2]string{"error", out.Error})
			}
			pairs = append(pairs, skippedPairs(out.Skipped)...)
		case wait:
			pairs = append(pairs, [2]string{"note", "not committed within --timeout; check with `plug query tx " + out.ID + "`"})
		}
		return e.out.Fields(pairs)
	})
	if err != nil {
		return err
	}
	if dropped != nil {
		return reportedError{fmt.Errorf("transaction %s was dropped and will never commit: %s; to try again, sign it anew "+
			"with `plug tx resend %s`", id.Short(), dropped.Status.Reason, id)}
	}
	if r := res.Result; r != nil && r.Code != exec.OK {
		return reportedError{fmt.Errorf("transaction %s %s at height %d: %s", id.Short(), r.Code, r.Height, r.Error)}
	}
	if wait && res.Result == nil {
		return reportedError{fmt.Errorf("transaction %s was accepted but not committed within %s: "+
			"check later with `plug query tx %s`", id.Short(), timeout, id)}
	}
	return nil
}

// skippedPairs lists a batch's skipped steps for the human output.
func skippedPairs(skipped []transform.Skip) [][2]string {
	var out [][2]string
	for _, sk := range skipped {
		out = append(out, [2]string{"skipped", fmt.Sprintf("step %d: %s", sk.Part, sk.Error)})
	}
	return out
}

func mustTxID(t *tx.Tx) hash.Hash {
	id, err := t.ID()
	if err != nil {
		panic(err) // a transaction this process built and signed always encodes
	}
	return id
}

// outbox opens the journal of submitted transactions: DIR/outbox for a
// --testnet (or a --network beside one), else HOME/outbox.
func (e *env) outbox() (*client.Outbox, error) {
	if e.testnetKeys != "" {
		return client.OpenOutbox(filepath.Join(filepath.Dir(e.testnetKeys), "outbox"))
	}
	home, err := homeDir(e.c)
	if err != nil {
		return nil, err
	}
	return client.OpenOutbox(filepath.Join(home, "outbox"))
}

// reconcile follows the outbox's earlier transactions of chainID (sending again
// any a node lost) and warns of those found dropped.
func (e *env) reconcile(ob *client.Outbox, chainID string) []client.Outcome {
	ocs, err := ob.Reconcile(e.ctx(), e.client, chainID)
	if err != nil {
		e.out.Warn("checking earlier transactions in %s: %v", ob.Dir(), err)
	}
	for _, oc := range ocs {
		var d *client.DroppedError
		if errors.As(oc.Err, &d) {
			e.out.Warn("earlier transaction %s was dropped: %s (sign it anew with `plug tx resend %s`)", oc.ID.Short(), d.Status.Reason, oc.ID)
		}
	}
	return ocs
}

func txTransferCommand() *cli.Command {
	return &cli.Command{
		Name:  "transfer",
		Usage: "move an amount of an asset from the signer to an account (across shards with --network)",
		UsageText: "plug tx transfer --from KEY --to ACCOUNT --asset NAME --amount N [--wait]\n\n" +
			"plug tx transfer --node http://127.0.0.1:26657 --from alice --to bob --asset USD --amount 25 --wait\n" +
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
			n, err := needAmount(e.c)
			if err != nil {
				return nil, err
			}
			if e.shards != nil && !e.c.IsSet("chain") {
				return nil, routed{networkTransfer(e, s, to, a, n)}
			}
			if err := checkAsset(e.ctx(), e.client, a); err != nil {
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
			n, err := needAmount(e.c)
			if err != nil {
				return nil, err
			}
			if err := checkAsset(e.ctx(), e.client, a); err != nil {
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
			n, err := needAmount(e.c)
			if err != nil {
				return nil, err
			}
			if err := checkAsset(e.ctx(), e.client, a); err != nil {
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
			&cli.Uint64Flag{Name: "max-supply", Usage: "supply cap (0: none)"},
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
			return &asset.Create{Asset: a, Definition: asset.Definition{Issuer: iss, Decimals: uint8(d), MaxSupply: e.c.Uint64("max-supply")}}, nil
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
			n, err := needAmount(e.c)
			if err != nil {
				return nil, err
			}
			a, err := e.stakingAsset()
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
			amountFlag("amount of power to move"),
		),
		Action: txAction(func(e *env, s *signer) (transform.Transform, error) {
			n, err := needAmount(e.c)
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
