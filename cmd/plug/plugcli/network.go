package plugcli

import (
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/crosschain/shard"
	"github.com/plugchain/plug/settlement"
)

// networkCommand returns `plug network`: look at and grow a logical network file.
func networkCommand() *cli.Command {
	fileFlag := &cli.StringFlag{Name: "network", Usage: "the network file (e.g. DIR/network.toml of 'plug testnet up --shards N')", Required: true}
	return &cli.Command{
		Name:  "network",
		Usage: "a logical network of shard chains: show it, place accounts, add a shard",
		UsageText: "plug network COMMAND --network FILE [flags]\n\n" +
			"plug network show --network /tmp/sh/network.toml\n" +
			"plug network place --network /tmp/sh/network.toml --account alice\n" +
			"plug network add-shard --network net.toml --chain shard-4 --node http://10.0.0.5:26657",
		Description: "A logical network is several chains sharing one namespace of accounts and assets; the network\n" +
			"file names its shards, the placement rule and the relays. `plug tx transfer --network FILE` and\n" +
			"`plug query balance|balances|supply --network FILE` use it. See docs/sharding.md.",
		Subcommands: []*cli.Command{
			{
				Name:      "show",
				Usage:     "the network's shards, generations and relays",
				UsageText: "plug network show --network FILE [--output json]",
				Flags:     []cli.Flag{fileFlag},
				Action: func(c *cli.Context) error {
					o, err := newOutput(c)
					if err != nil {
						return err
					}
					n, err := shard.Load(c.String("network"))
					if err != nil {
						return err
					}
					return o.Emit(n, func(w io.Writer) error {
						fmt.Fprintf(w, "network %s: %d shards, placement %s, generation %d, assets %s\n",
							n.Name, len(n.Shards), n.Placement.Rule, n.Generation(), strings.Join(n.Assets, ","))
						var rows [][]string
						for _, s := range n.Shards {
							rows = append(rows, []string{s.ChainID, strconv.Itoa(s.Generation), strings.Join(s.Endpoints, ",")})
						}
						if err := o.Table([]string{"SHARD", "GENERATION", "ENDPOINTS"}, rows); err != nil {
							return err
						}
						for _, r := range n.Relays {
							fmt.Fprintf(w, "relay %s: %s\n", r.Name, strings.Join(r.Shards, ", "))
						}
						if len(n.Directory) > 0 {
							fmt.Fprintf(w, "%d accounts pinned by the directory\n", len(n.Directory))
						}
						return nil
					})
				},
			},
			{
				Name:  "place",
				Usage: "which shard an account lives on (asks the shards whether it exists when the network has grown)",
				UsageText: "plug network place --network FILE --account NAME|ADDRESS\n\n" +
					"plug network place --network /tmp/sh/network.toml --account bob --output json",
				Flags: append([]cli.Flag{&cli.StringFlag{Name: "account", Usage: "key name or address"}}, clientFlags()...),
				Action: func(c *cli.Context) error {
					e, err := newEnv(c)
					if err != nil {
						return err
					}
					a, name, err := e.account("account", c.String("account"))
					if err != nil {
						return err
					}
					home, err := e.shards.Home(e.ctx(), a)
					if err != nil {
						return err
					}
					out := struct {
						Account    string   `json:"account"`
						Address    string   `json:"address"`
						Shard      string   `json:"shard"`
						Candidates []string `json:"candidates"`
					}{orAddr(name, a), a.String(), home, e.shards.Network().Candidates(a)}
					return e.out.Emit(out, func(io.Writer) error {
						return e.out.Fields([][2]string{{"account", out.Account}, {"address", out.Address}, {"shard", home},
							{"candidates", strings.Join(out.Candidates, " -> ")}})
					})
				},
			},
			{
				Name:  "add-shard",
				Usage: "add a running shard chain to the network file as a new placement generation",
				UsageText: "plug network add-shard --network FILE --chain ID --node URL [--node URL ...]\n\n" +
					"plug network add-shard --network net.toml --chain shard-4 --node http://10.0.0.5:26657",
				Description: "Existing accounts stay on their shards; accounts that exist nowhere yet are placed over every\n" +
					"shard, the new one included. Start the shard (same assets and roles as the others), create the\n" +
					"light clients between it and every shard and run relays for its paths first; then distribute\n" +
					"the new file to the network's clients. The procedure is in docs/sharding.md.",
				Flags: []cli.Flag{fileFlag,
					&cli.StringFlag{Name: "chain", Usage: "chain ID of the new shard", Required: true},
					&cli.StringSliceFlag{Name: "node", Usage: "gateway URL of a node of the new shard (repeat for several)", Required: true},
				},
				Action: func(c *cli.Context) error {
					o, err := newOutput(c)
					if err != nil {
						return err
					}
					path := c.String("network")
					n, err := shard.Load(path)
					if err != nil {
						return err
					}
					if err := n.AddShard(c.String("chain"), c.StringSlice("node")); err != nil {
						return err
					}
					if err := n.Save(path); err != nil {
						return err
					}
					return o.Emit(n, func(w io.Writer) error {
						_, err := fmt.Fprintf(w, "added %s to %s as generation %d; new accounts are placed over %d shards\n",
							c.String("chain"), path, n.Generation(), len(n.Shards))
						return err
					})
				},
			},
		},
	}
}

func orAddr(name string, a crypto.Address) string {
	if name == "" {
		return a.String()
	}
	return name
}

// networkTransferOut is `plug tx transfer --network` in --output json.
type networkTransferOut struct {
	*shard.TransferResult
	From   string `json:"from"`
	To     string `json:"to"`
	Asset  string `json:"asset"`
	Amount uint64 `json:"amount"`
	// Display is the amount in whole units with the asset's name ("12.34 USD").
	Display string `json:"display"`
	Final   bool   `json:"final"`
	OK      bool   `json:"ok"`
}

// networkTransfer routes a transfer over e's network and prints where it went.
func networkTransfer(e *env, s *signer, to crypto.Address, assetName string) error {
	wait, timeout := e.c.Bool("wait"), e.c.Duration("timeout")
	home, err := e.shards.Home(e.ctx(), s.key.Public().Address())
	if err != nil {
		return err
	}
	cl, err := e.shards.Chain(home)
	if err != nil {
		return err
	}
	amount, err := e.assetAmount(cl, assetName)
	if err != nil {
		return err
	}
	var res *shard.TransferResult
	err = waitBar(e.out, "settling the transfer", func() error {
		var err error
		res, err = e.shards.Transfer(e.ctx(), s.key, to, assetName, amount, wait, timeout)
		return err
	})
	if err != nil {
		return err
	}
	if res.XTx != nil {
		// Recorded where `plug xchain status` looks: the testnet's store, or HOME's.
		if err := saveRecord(e.tradeStore(), record{Kind: settlement.TransferKind, XTx: *res.XTx, Submitted: time.Now().UTC()}); err != nil {
			e.out.Warn("recording cross-shard transfer %s: %v", res.XTxID, err)
		}
	}
	final, ok := res.Done()
	out := networkTransferOut{TransferResult: res, From: s.key.Public().Address().String(), To: to.String(),
		Asset: assetName, Amount: amount, Display: e.shown.Display, Final: final, OK: ok}
	err = e.out.Emit(out, func(io.Writer) error {
		pairs := [][2]string{{"route", res.Route + " (" + res.FromShard + " -> " + res.ToShard + ")"},
			{"from", e.label(s.key.Public().Address())}, {"to", e.label(to)}, {"amount", withDisplay(amount, out.Display)}}
		if res.Route == shard.RouteIntra {
			pairs = append(pairs, [2]string{"tx", res.TxID})
			status := res.Code
			if status == "" {
				status = "pending"
			}
			pairs = append(pairs, [2]string{"status", status})
			if res.Error != "" {
				pairs = append(pairs, [2]string{"error", res.Error})
			}
		} else {
			pairs = append(pairs, [2]string{"xtx", res.XTxID}, [2]string{"status", string(res.Status.State)},
				[2]string{"final", strconv.FormatBool(res.Status.Final)})
			for _, l := range res.Status.Legs {
				v := l.Status
				if l.Reason != "" {
					v += ": " + l.Reason
				}
				pairs = append(pairs, [2]string{fmt.Sprintf("leg %d (%s)", l.Leg, l.Chain), v})
			}
			if res.Status.Reason != "" {
				pairs = append(pairs, [2]string{"reason", res.Status.Reason})
			}
		}
		return e.out.Fields(pairs)
	})
	if err != nil {
		return err
	}
	switch {
	case final && !ok:
		return reportedError{fmt.Errorf("the transfer did not take effect (%s)", out.describe())}
	case wait && !final:
		return reportedError{fmt.Errorf("the transfer is not final within --timeout %s: check with `plug query balance --network`", timeout)}
	}
	return nil
}

func (o networkTransferOut) describe() string {
	if o.Route == shard.RouteIntra {
		return o.Code + ": " + o.Error
	}
	return "aborted: " + o.Status.Reason
}

// queryBalancesCommand returns `plug query balances`: an account set's balances
// over a network (or one chain), each proven with --prove.
func queryBalancesCommand() *cli.Command {
	return &cli.Command{
		Name:  "balances",
		Usage: "the balances of a set of accounts, each read on its shard, and their total",
		UsageText: "plug query balances --network FILE --asset NAME --accounts A,B,... [--prove]\n\n" +
			"plug query balances --network /tmp/sh/network.toml --asset USD --accounts alice,bob,carol --prove",
		Flags: aggregateFlags(&cli.StringSliceFlag{Name: "accounts", Usage: "key names or addresses (comma-separated or repeated)"}),
		Action: aggregateAction(func(e *env, sc *shard.Client, a string) error {
			var addrs []crypto.Address
			names := map[crypto.Address]string{}
			for _, v := range e.c.StringSlice("accounts") {
				for _, one := range strings.Split(v, ",") {
					ad, name, err := e.account("accounts", strings.TrimSpace(one))
					if err != nil {
						return err
					}
					addrs = append(addrs, ad)
					names[ad] = orAddr(name, ad)
				}
			}
			if len(addrs) == 0 {
				return fmt.Errorf("missing --accounts: give key names or addresses, e.g. --accounts alice,bob")
			}
			agg, err := sc.Balances(e.ctx(), a, addrs, e.c.Bool("prove"))
			if err != nil {
				return proofHint(err)
			}
			display := displayer(e.ctx(), e.client, a)
			out := aggregateOut{Aggregate: agg, Display: display(agg.Total)}
			return e.out.Emit(out, func(w io.Writer) error {
				var rows [][]string
				for _, ab := range agg.Accounts {
					rows = append(rows, []string{names[ab.Account], ab.Shard, withDisplay(ab.Amount, display(ab.Amount)),
						strconv.FormatUint(ab.Height, 10), strconv.FormatBool(ab.Verified)})
				}
				if err := e.out.Table([]string{"ACCOUNT", "SHARD", a, "HEIGHT", "VERIFIED"}, rows); err != nil {
					return err
				}
				_, err := fmt.Fprintf(w, "total %s\n", withDisplay(agg.Total, out.Display))
				return err
			})
		}),
	}
}

// querySupplyCommand returns `plug query supply`: an asset's supply summed over
// a network's shards.
func querySupplyCommand() *cli.Command {
	return &cli.Command{
		Name:  "supply",
		Usage: "an asset's total supply, summed over the network's shards (each answer proven with --prove)",
		UsageText: "plug query supply --network FILE --asset NAME [--prove]\n\n" +
			"plug query supply --network /tmp/sh/network.toml --asset USD --prove --output json",
		Flags: aggregateFlags(),
		Action: aggregateAction(func(e *env, sc *shard.Client, a string) error {
			agg, err := sc.Supply(e.ctx(), a, e.c.Bool("prove"))
			if err != nil {
				return proofHint(err)
			}
			display := displayer(e.ctx(), e.client, a)
			out := aggregateOut{Aggregate: agg, Display: display(agg.Total)}
			return e.out.Emit(out, func(w io.Writer) error {
				var rows [][]string
				for _, s := range agg.Shards {
					rows = append(rows, []string{s.Shard, withDisplay(s.Amount, display(s.Amount)), strconv.FormatUint(s.Height, 10), strconv.FormatBool(s.Verified)})
				}
				if err := e.out.Table([]string{"SHARD", "SUPPLY", "HEIGHT", "VERIFIED"}, rows); err != nil {
					return err
				}
				_, err := fmt.Fprintf(w, "total %s (value in flight between shards is in no shard's supply)\n", withDisplay(agg.Total, out.Display))
				return err
			})
		}),
	}
}

// aggregateOut is `plug query balances|supply` in --output json: the total
// also in whole units ("12.34 USD"; "" when the asset's decimals are unknown).
type aggregateOut struct {
	*shard.Aggregate
	Display string `json:"display,omitempty"`
}

// aggregateFlags are the flags of a query over a whole network, then extra.
func aggregateFlags(extra ...cli.Flag) []cli.Flag {
	fl := append(extra,
		&cli.StringFlag{Name: "asset", Usage: "asset name"},
		&cli.BoolFlag{Name: "prove", Usage: "verify each shard's answer against its certified header"},
	)
	return append(fl, clientFlags()...)
}

// aggregateAction wraps a query over a whole network: it needs --network and
// --asset.
func aggregateAction(run func(e *env, sc *shard.Client, assetName string) error) cli.ActionFunc {
	return clientAction(0, func(e *env) error {
		sc, err := e.networkOnly()
		if err != nil {
			return err
		}
		a, err := needString(e.c, "asset", "the asset name, e.g. USD")
		if err != nil {
			return err
		}
		return run(e, sc, a)
	})
}

// tradeStore is where e's commands record crosschain transactions: DIR/settlements
// of a testnet, else HOME/settlements (as `plug settle` does).
func (e *env) tradeStore() string {
	if e.testnetKeys != "" {
		return filepath.Join(filepath.Dir(e.testnetKeys), "settlements")
	}
	home, err := homeDir(e.c)
	if err != nil {
		return "settlements"
	}
	return filepath.Join(home, "settlements")
}

// networkOnly returns the network client or says how to get one.
func (e *env) networkOnly() (*shard.Client, error) {
	if e.shards == nil {
		return nil, fmt.Errorf("%s reads a whole logical network: give --network FILE (e.g. DIR/network.toml of `plug testnet up --shards N`)", commandPath(e.c))
	}
	return e.shards, nil
}
