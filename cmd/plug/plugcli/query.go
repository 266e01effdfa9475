package plugcli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/transform"
)

// queryCommand returns `plug query`.
func queryCommand() *cli.Command {
	return &cli.Command{
		Name:    "query",
		Aliases: []string{"q"},
		Usage:   "read balances, state, blocks, headers, transactions and node status, with proofs",
		UsageText: "plug query COMMAND [flags]\n\n" +
			"plug query balance --testnet ./tn --account bob --asset USD --output json\n" +
			"plug query state balance/USD/3f2a…91c0 --node http://127.0.0.1:26657 --prove",
		Description: "With --prove, state reads come with a Merkle proof that is verified against the state root,\n" +
			"and that root against the header of that height and its commit certificate; the answer says\n" +
			"\"verified\": true. A proof that does not verify is an error (exit code 1).",
		Subcommands: []*cli.Command{
			queryBalanceCommand(),
			queryBalancesCommand(),
			querySupplyCommand(),
			queryStateCommand(),
			queryBlockCommand(),
			queryHeaderCommand(),
			queryTxCommand(),
			queryTxsCommand(),
			queryStatusCommand(),
			queryMapReduceCommand(),
		},
	}
}

func proveFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "prove", Usage: "fetch a Merkle proof and verify it (proof -> state root -> header -> certificate)"},
		&cli.Uint64Flag{Name: "height", Usage: "read after the block at this height (default: the latest)"},
	}
}

// clientAction wraps a query: it resolves the node and rejects arguments
// beyond maxArgs.
func clientAction(maxArgs int, fn func(e *env) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.NArg() > maxArgs {
			return fmt.Errorf("unexpected argument %q: see `%s --help`", c.Args().Get(maxArgs), commandPath(c))
		}
		e, err := newEnv(c)
		if err != nil {
			return err
		}
		return fn(e)
	}
}

// balanceOut is `plug query balance` in --output json.
type balanceOut struct {
	Account string `json:"account"`
	Address string `json:"address"`
	Asset   string `json:"asset"`
	Balance uint64 `json:"balance"`
	// Display is the balance in whole units with the asset's name ("12.34 USD").
	Display   string `json:"display"`
	Decimals  uint8  `json:"decimals"`
	Height    uint64 `json:"height"`
	StateRoot string `json:"state_root"`
	Proven    bool   `json:"proven"`
	Verified  bool   `json:"verified"`
}

func queryBalanceCommand() *cli.Command {
	return &cli.Command{
		Name:  "balance",
		Usage: "an account's balance of an asset",
		UsageText: "plug query balance --account ACCOUNT --asset NAME [--prove] [--height H]\n\n" +
			"plug query balance --testnet ./tn --chain alpha --account bob --asset USD --output json\n" +
			"plug query balance --node http://127.0.0.1:26657 --account 3f2a…91c0 --asset USD --prove\n" +
			"plug query balance --network /tmp/sh/network.toml --account bob --asset USD --prove   # on bob's shard",
		Flags: append(append([]cli.Flag{
			&cli.StringFlag{Name: "account", Usage: "account: key name or address"},
			&cli.StringFlag{Name: "asset", Usage: "asset name"},
		}, proveFlags()...), clientFlags()...),
		Action: clientAction(0, func(e *env) error {
			addr, name, err := e.account("account", e.c.String("account"))
			if err != nil {
				return err
			}
			a, err := needString(e.c, "asset", "the asset name, e.g. USD")
			if err != nil {
				return err
			}
			prove := e.c.Bool("prove")
			cl := e.client
			if e.shards != nil && !e.c.IsSet("chain") {
				// The account's home shard holds its balance.
				home, err := e.shards.Home(e.ctx(), addr)
				if err != nil {
					return err
				}
				if cl, err = e.shards.Chain(home); err != nil {
					return err
				}
			}
			def, err := assetDef(e.ctx(), cl, a)
			if err != nil {
				return err
			}
			v, res, err := cl.ProvenBalance(e.ctx(), a, addr, e.c.Uint64("height"), prove)
			if err != nil {
				return proofHint(err)
			}
			if name == "" {
				name = addr.String()
			}
			out := balanceOut{Account: name, Address: addr.String(), Asset: a, Balance: v,
				Display: asset.Display(v, def.Decimals, a), Decimals: def.Decimals, Height: res.Height,
				StateRoot: res.StateRoot.String(), Proven: prove, Verified: res.Verified}
			return e.out.Emit(out, func(w io.Writer) error {
				return e.out.Fields([][2]string{{"account", name}, {"address", out.Address}, {"asset", a},
					{"balance", withDisplay(v, out.Display)}, {"height", strconv.FormatUint(out.Height, 10)},
					{"proof", proofText(prove, res.Verified)}})
			})
		}),
	}
}

func proofText(prove, verified bool) string {
	switch {
	case verified:
		return "verified (Merkle proof -> state root -> header -> certificate)"
	case prove:
		return "NOT verified"
	}
	return "not requested (use --prove)"
}

// proofHint adds what to do to a proof failure.
func proofHint(err error) error {
	if errors.Is(err, client.ErrProof) {
		return fmt.Errorf("%w: do not trust this node's answer; ask another node (--node)", err)
	}
	return err
}

// stateOut is `plug query state` in --output json.
type stateOut struct {
	Key       string `json:"key"`
	Height    uint64 `json:"height"`
	StateRoot string `json:"state_root"`
	Found     bool   `json:"found"`
	// Value is the decoded value; Raw its canonical CBOR in base64.
	Value    any    `json:"value"`
	Raw      string `json:"raw,omitempty"`
	Proven   bool   `json:"proven"`
	Verified bool   `json:"verified"`
}

func queryStateCommand() *cli.Command {
	return &cli.Command{
		Name:      "state",
		Usage:     "read a state key (any key: balance/ASSET/ADDRESS, nonce/ADDRESS, rbac/roles, validators, ...)",
		ArgsUsage: "KEY",
		UsageText: "plug query state KEY [--prove] [--height H]\n\n" +
			"plug query state rbac/roles --testnet ./tn\n" +
			"plug query state validators --node http://127.0.0.1:26657 --prove --output json",
		Flags: append(proveFlags(), clientFlags()...),
		Action: clientAction(1, func(e *env) error {
			key, err := oneArg(e.c, "KEY")
			if err != nil {
				return err
			}
			prove := e.c.Bool("prove")
			res, err := e.client.State(e.ctx(), e.c.Uint64("height"), key, prove)
			if err != nil {
				return proofHint(err)
			}
			out := stateOut{Key: key, Height: res.Height, StateRoot: res.StateRoot.String(), Found: res.Found,
				Proven: prove, Verified: res.Verified}
			if res.Found {
				var v any
				if err := res.Decode(&v); err == nil {
					if _, jerr := json.Marshal(v); jerr == nil {
						out.Value = v
					}
				}
				out.Raw = base64.StdEncoding.EncodeToString(res.Value)
			}
			return e.out.Emit(out, func(w io.Writer) error {
				val := "(absent)"
				if res.Found {
					b, _ := json.Marshal(out.Value)
					val = string(b)
				}
				return e.out.Fields([][2]string{{"key", key}, {"height", strconv.FormatUint(out.Height, 10)},
					{"state root", out.StateRoot}, {"value", val}, {"proof", proofText(prove, res.Verified)}})
			})
		}),
	}
}

// heightArg parses HEIGHT or "latest" (0).
func heightArg(e *env) (uint64, error) {
	if e.c.NArg() == 0 || e.c.Args().First() == "latest" {
		return 0, nil
	}
	h, err := strconv.ParseUint(e.c.Args().First(), 10, 64)
	if err != nil || h == 0 {
		return 0, fmt.Errorf("height %q: want a positive whole number or latest", e.c.Args().First())
	}
	return h, nil
}

func headerFields(e *env, h *block.Header, hash hash.Hash, votes int) error {
	return e.out.Fields([][2]string{
		{"height", strconv.FormatUint(h.Height, 10)}, {"hash", hash.String()},
		{"time", time.UnixMilli(h.Time).UTC().Format(time.RFC3339Nano)}, {"chain", h.ChainID},
		{"state root", h.StateRoot.String()}, {"proposer", h.Proposer.String()},
		{"certificate", fmt.Sprintf("%d commit votes (checked: names this header)", votes)},
	})
}

func queryHeaderCommand() *cli.Command {
	return &cli.Command{
		Name:      "header",
		Usage:     "a block header with its commit certificate",
		ArgsUsage: "[HEIGHT|latest]",
		UsageText: "plug query header [HEIGHT|latest]\n\n" +
			"plug query header --testnet ./tn\n" +
			"plug query header 42 --node http://127.0.0.1:26657 --output json",
		Flags: clientFlags(),
		Action: clientAction(1, func(e *env) error {
			h, err := heightArg(e)
			if err != nil {
				return err
			}
			hr, err := e.client.Header(e.ctx(), h)
			if err != nil {
				return proofHint(err)
			}
			return e.out.Emit(hr, func(io.Writer) error {
				return headerFields(e, hr.Header, hr.Hash, len(hr.Certificate.Votes))
			})
		}),
	}
}

func queryBlockCommand() *cli.Command {
	return &cli.Command{
		Name:      "block",
		Usage:     "a committed block: header, transactions and commit certificate",
		ArgsUsage: "[HEIGHT|latest]",
		UsageText: "plug query block [HEIGHT|latest]\n\n" +
			"plug query block 42 --testnet ./tn\n" +
			"plug query block latest --node http://127.0.0.1:26657 --output json",
		Flags: clientFlags(),
		Action: clientAction(1, func(e *env) error {
			h, err := heightArg(e)
			if err != nil {
				return err
			}
			if h == 0 {
				st, err := e.client.Status(e.ctx())
				if err != nil {
					return err
				}
				if st.Height == 0 {
					return errors.New("no block committed yet: try again in a moment")
				}
				h = st.Height
			}
			br, err := e.client.Block(e.ctx(), h)
			if err != nil {
				return proofHint(err)
			}
			return e.out.Emit(br, func(w io.Writer) error {
				if err := headerFields(e, &br.Block.Header, br.Hash, len(br.Certificate.Votes)); err != nil {
					return err
				}
				fmt.Fprintf(w, "transactions: %d\n", len(br.TxIDs))
				var rows [][]string
				for i, id := range br.TxIDs {
					var signers []string
					for _, s := range br.Block.Txs[i].Body.Signers {
						signers = append(signers, e.label(s.Key.Address()))
					}
					rows = append(rows, []string{"  " + strconv.Itoa(i), id.String(), br.Block.Txs[i].Body.Type, strings.Join(signers, ", ")})
				}
				if len(rows) == 0 {
					return nil
				}
				return e.out.Table([]string{"  #", "ID", "TYPE", "SIGNERS"}, rows)
			})
		}),
	}
}

// txResultOut is `plug query tx` in --output json.
type txResultOut struct {
	ID string `json:"id"`
	// Status is ok, failed or rejected once committed; pending; or dropped
	// (it left the mempool without being committed and never will be).
	Status string `json:"status"`
	Height uint64 `json:"height,omitempty"`
	Index  uint32 `json:"index,omitempty"`
	Code   *int   `json:"code,omitempty"`
	Error  string `json:"error,omitempty"`
	// Reason says why a transaction was dropped, or what a pending one waits for.
	Reason  string           `json:"reason,omitempty"`
	Skipped []transform.Skip `json:"skipped,omitempty"`
	Type    string           `json:"type,omitempty"`
	Memo    string           `json:"memo,omitempty"`
}

func queryTxCommand() *cli.Command {
	return &cli.Command{
		Name:      "tx",
		Usage:     "what became of a transaction: committed (with its result), pending or dropped",
		ArgsUsage: "ID",
		UsageText: "plug query tx ID\n\n" +
			"plug query tx 5f0c1e…c2a9 --testnet ./tn --output json",
		Description: "A committed transaction shows its height, code and error, and for a relay's batch the steps it\n" +
			"skipped and why. A pending one says what it waits for; a dropped one why (its nonce was used by\n" +
			"another transaction, or the executor rejected it). A transaction this machine submitted (kept in\n" +
			"its outbox) that no node knows any more is sent again with the same bytes, or found dropped by its\n" +
			"used nonce. The exit code is 0 whenever the answer is known, 1 when no node knows the transaction.",
		Flags: clientFlags(),
		Action: clientAction(1, func(e *env) error {
			arg, err := oneArg(e.c, "ID")
			if err != nil {
				return err
			}
			id, err := hash.Parse(arg)
			if err != nil {
				return fmt.Errorf("transaction ID %q: want the 64 hex digits printed by `plug tx`", arg)
			}
			r, err := e.client.TxResult(e.ctx(), id)
			if errors.Is(err, client.ErrNotFound) && !errors.Is(err, client.ErrPending) {
				// Ours, and unknown to the node: Follow tells lost from dropped.
				if ob, oerr := e.outbox(); oerr == nil {
					if t, gerr := ob.Find(id); gerr == nil {
						r, err = e.client.Follow(e.ctx(), t)
						ob.Settle(t, r, err)
					}
				}
			}
			out := txResultOut{ID: id.String()}
			var signers []string // labels, for the text output
			var pe *client.PendingError
			var de *client.DroppedError
			switch {
			case errors.As(err, &pe):
				out.Status, out.Reason = gateway.TxPending, pe.Status.Reason
			case errors.As(err, &de):
				out.Status, out.Reason = gateway.TxDropped, de.Status.Reason
			case errors.Is(err, client.ErrNotFound):
				return fmt.Errorf("transaction %s is unknown to %s: neither committed nor pending there (submitted to another "+
					"node not yet reached by gossip, or never submitted)", id, e.client.Endpoint())
			case err != nil:
				return err
			default:
				code := int(r.Code)
				out.Status, out.Height, out.Index, out.Code, out.Error, out.Skipped = r.Code.String(), r.Height, r.Index, &code, r.Error, r.Skipped
				if r.Tx != nil {
					out.Type, out.Memo = r.Tx.Body.Type, r.Tx.Body.Memo
					for _, s := range r.Tx.Body.Signers {
						signers = append(signers, e.label(s.Key.Address()))
					}
				}
			}
			return e.out.Emit(out, func(io.Writer) error {
				pairs := [][2]string{{"id", out.ID}, {"status", out.Status}}
				if out.Reason != "" {
					pairs = append(pairs, [2]string{"reason", out.Reason})
				}
				if out.Code != nil {
					pairs = append(pairs, [2]string{"type", out.Type}, [2]string{"height", strconv.FormatUint(out.Height, 10)},
						[2]string{"index", strconv.FormatUint(uint64(out.Index), 10)})
					if len(signers) > 0 {
						pairs = append(pairs, [2]string{"signers", strings.Join(signers, ", ")})
					}
				}
				if out.Error != "" {
					pairs = append(pairs, [2]string{"error", out.Error})
				}
				pairs = append(pairs, skippedPairs(out.Skipped)...)
				return e.out.Fields(pairs)
			})
		}),
	}
}

func queryStatusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "the node's status: chain, height, state root, peers, mempool",
		UsageText: "plug query status\n\n" +
			"plug query status --testnet ./tn --chain alpha\n" +
			"plug query status --node http://127.0.0.1:26657 --output json",
		Flags: clientFlags(),
		Action: clientAction(0, func(e *env) error {
			st, err := e.client.Status(e.ctx())
			if err != nil {
				return err
			}
			return e.out.Emit(st, func(io.Writer) error {
				return e.out.Fields([][2]string{
					{"node", st.Node + " (" + e.client.Endpoint() + ")"}, {"chain", st.ChainID},
					{"height", strconv.FormatUint(st.Height, 10)}, {"state root", st.StateRoot.String()},
					{"latest hash", st.LatestHash.String()}, {"round", strconv.FormatUint(uint64(st.Round), 10)},
					{"peers", strconv.Itoa(st.Peers)}, {"mempool", strconv.Itoa(st.MempoolSize)},
					{"validator", strconv.FormatBool(st.Validator)}, {"validators", strconv.Itoa(st.Validators)},
					{"catching up", strconv.FormatBool(st.CatchingUp)},
				})
			})
		}),
	}
}

// checkAsset refuses an asset the chain of cl does not define, before anything
// is read as zero or signed.
func checkAsset(ctx context.Context, cl *client.Client, name string) error {
	_, err := assetDef(ctx, cl, name)
	return err
}
