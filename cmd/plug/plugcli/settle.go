package plugcli

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/settlement"
)

// settleCommand returns `plug settle`.
func settleCommand() *cli.Command {
	return &cli.Command{
		Name:  "settle",
		Usage: "settle DvP and PvP trades across chains, all legs or none",
		UsageText: "plug settle dvp --testnet DIR --seller KEY --buyer KEY --delivery CHAIN:ASSET:AMOUNT --payment CHAIN:ASSET:AMOUNT [--wait]\n" +
			"plug settle pvp --testnet DIR --party1 KEY --party2 KEY --leg1 CHAIN:ASSET:AMOUNT --leg2 CHAIN:ASSET:AMOUNT [--wait]\n" +
			"plug settle batch --testnet DIR --trade FROM:TO:CHAIN:ASSET:AMOUNT ... [--wait]\n" +
			"plug settle instruct --as KEY ... --out A.json; plug settle match A.json B.json --testnet DIR --from KEY\n" +
			"plug settle status ID|--ref R --party P --testnet DIR\n" +
			"plug settle history --party P --testnet DIR [--output csv|json]",
		Description: "A trade is one crosschain transaction (docs/settlement.md): every party signs it, each leg is\n" +
			"prepared (escrowed) on its chain, the coordinator chain decides, and each leg then completes or is\n" +
			"refunded. Relays carry the proofs between chains: run `plug relay start` next to the chains.",
		Subcommands: []*cli.Command{settleDvPCommand(), settlePvPCommand(), settleBatchCommand(), settleInstructCommand(), settleMatchCommand(), settleStatusCommand("settle"), settleHistoryCommand()},
	}
}

// xchainFlags are the flags of commands that talk to several chains.
func xchainFlags(extra ...cli.Flag) []cli.Flag {
	fl := append(extra,
		&cli.StringFlag{
			Name:  "testnet",
			Usage: "use the local testnet in this directory: its chains and its test keyring DIR/keys",
		},
		&cli.StringSliceFlag{
			Name:  "node",
			Usage: "a chain's gateway as CHAIN=URL, e.g. alpha=http://127.0.0.1:26657 (repeat for each chain; instead of --testnet)",
		},
		&cli.StringFlag{
			Name:  "store",
			Usage: "directory where submitted trades are recorded for plug settle status (default: DIR/settlements, else HOME/settlements)",
		},
		&cli.DurationFlag{Name: "request-timeout", Value: 10 * time.Second, Usage: "timeout of each request to a node"},
	)
	return append(fl, keyringFlags()...)
}

// tradeFlags are the flags shared by dvp and pvp.
func tradeFlags(extra ...cli.Flag) []cli.Flag {
	return xchainFlags(append(extra,
		&cli.StringFlag{Name: "coordinator", Usage: "chain that decides (default: the first leg's chain)"},
		&cli.DurationFlag{Name: "deadline", Value: 30 * time.Second, Usage: "how long from now the trade may take to commit (on the coordinator's clock); after it, it aborts"},
		&cli.StringFlag{Name: "ref", Usage: "trade reference (default: a new one, printed): the chains let one trade per paying party and reference settle, " +
			"so running the command again with the same ref and terms reports (and resumes) the trade instead of making another; other terms are refused"},
		&cli.BoolFlag{Name: "wait", Usage: "wait until the trade is final (every leg committed or every leg aborted) and print it"},
		&cli.DurationFlag{Name: "timeout", Value: 90 * time.Second, Usage: "how long --wait waits"},
		&cli.BoolFlag{Name: "no-coordinator-prepare", Usage: "submit no prepare for the legs on the coordinator: the relay's decide prepares and settles them in one transaction (one chain transaction fewer; the payer's asset is not locked before the decision)"},
	)...)
}

func settleDvPCommand() *cli.Command {
	return &cli.Command{
		Name:  "dvp",
		Usage: "delivery versus payment: an asset from seller to buyer against payment from buyer to seller",
		UsageText: "plug settle dvp --seller KEY --buyer KEY --delivery CHAIN:ASSET:AMOUNT --payment CHAIN:ASSET:AMOUNT [flags]\n\n" +
			"plug settle dvp --testnet ./tn --seller alice --buyer bob --delivery alpha:EUR:100 --payment beta:USD:110 --wait\n" +
			"plug settle dvp --testnet ./tn --seller alice --buyer bob --delivery alpha:EUR:5 --payment beta:USD:6 --coordinator beta --deadline 1m --wait --output json",
		Description: "Both parties sign the trade with their keyring keys; each signs and submits xchain/prepare of the\n" +
			"leg it pays. With --wait the command returns when the trade is final and prints its id, its status\n" +
			"(committed or aborted), each leg's chain and status, and the reason of an abort. The exit code is 1\n" +
			"when the trade aborted or is not final within --timeout.",
		Flags: tradeFlags(
			&cli.StringFlag{Name: "seller", Usage: "party delivering the asset: a keyring key"},
			&cli.StringFlag{Name: "buyer", Usage: "party paying: a keyring key"},
			&cli.StringFlag{Name: "delivery", Usage: "what the seller delivers: CHAIN:ASSET:AMOUNT"},
			&cli.StringFlag{Name: "payment", Usage: "what the buyer pays: CHAIN:ASSET:AMOUNT"},
		),
		Action: func(c *cli.Context) error {
			return tradeAction(c, func(x *xenv) (settlement.Trade, []crypto.PrivateKey, error) {
				sk, bk, d, p, err := twoSided(c, x, "seller", "buyer", "delivery", "payment")
				if err != nil {
					return settlement.Trade{}, nil, err
				}
				return settlement.DvP(sk.Public().Address(), bk.Public().Address(), d, p), []crypto.PrivateKey{sk, bk}, nil
			})
		},
	}
}

func settlePvPCommand() *cli.Command {
	return &cli.Command{
		Name:  "pvp",
		Usage: "payment versus payment: one currency against another, or any set of legs",
		UsageText: "plug settle pvp --party1 KEY --party2 KEY --leg1 CHAIN:ASSET:AMOUNT --leg2 CHAIN:ASSET:AMOUNT [flags]\n" +
			"plug settle pvp --leg FROM:TO:CHAIN:ASSET:AMOUNT --leg ... [flags]\n\n" +
			"plug settle pvp --testnet ./tn --party1 alice --party2 bob --leg1 alpha:USD:100 --leg2 beta:EUR:92 --wait\n" +
			"plug settle pvp --testnet ./tn --leg alice:bob:alpha:USD:10 --leg bob:carol:beta:EUR:9 --leg carol:alice:gamma:USD:8 --wait",
		Description: "--leg1 is paid by party1 to party2 and --leg2 by party2 to party1. Repeated --leg gives any number\n" +
			"of legs between any parties (FROM and TO are keyring keys). Every party that pays signs the trade.",
		Flags: tradeFlags(
			&cli.StringFlag{Name: "party1", Usage: "party paying --leg1: a keyring key"},
			&cli.StringFlag{Name: "party2", Usage: "party paying --leg2: a keyring key"},
			&cli.StringFlag{Name: "leg1", Usage: "what party1 pays party2: CHAIN:ASSET:AMOUNT"},
			&cli.StringFlag{Name: "leg2", Usage: "what party2 pays party1: CHAIN:ASSET:AMOUNT"},
			&cli.StringSliceFlag{Name: "leg", Usage: "a leg FROM:TO:CHAIN:ASSET:AMOUNT (repeat; instead of --party1/--party2/--leg1/--leg2)"},
		),
		Action: func(c *cli.Context) error {
			return tradeAction(c, func(x *xenv) (settlement.Trade, []crypto.PrivateKey, error) {
				if legs := c.StringSlice("leg"); len(legs) > 0 {
					if c.IsSet("leg1") || c.IsSet("leg2") {
						return settlement.Trade{}, nil, errors.New("give --leg1/--leg2 or repeated --leg, not both")
					}
					return multiLegTrade(x, legs)
				}
				k1, k2, l1, l2, err := twoSided(c, x, "party1", "party2", "leg1", "leg2")
				if err != nil {
					return settlement.Trade{}, nil, err
				}
				return settlement.PvP(k1.Public().Address(), k2.Public().Address(), l1, l2), []crypto.PrivateKey{k1, k2}, nil
			})
		},
	}
}

// twoSided reads the two parties' keys and the two legs of a two-sided trade
// from the flags named a, b (parties) and la, lb (legs).
func twoSided(c *cli.Context, x *xenv, a, b, la, lb string) (ka, kb crypto.PrivateKey, legA, legB settlement.LegSpec, err error) {
	if ka, _, err = x.partyKey(a, c.String(a)); err != nil {
		return
	}
	if kb, _, err = x.partyKey(b, c.String(b)); err != nil {
		return
	}
	if legA, err = legFlag(c, la, x.legSpec); err != nil {
		return
	}
	legB, err = legFlag(c, lb, x.legSpec)
	return
}

// multiLegTrade reads repeated --leg FROM:TO:CHAIN:ASSET:AMOUNT.
func multiLegTrade(x *xenv, legs []string) (settlement.Trade, []crypto.PrivateKey, error) {
	t := settlement.Trade{Kind: settlement.PvPKind}
	var keys []crypto.PrivateKey
	for _, v := range legs {
		parts := strings.SplitN(v, ":", 3)
		if len(parts) != 3 {
			return t, nil, fmt.Errorf("--leg %q: want FROM:TO:CHAIN:ASSET:AMOUNT, e.g. alice:bob:alpha:USD:10", v)
		}
		fk, _, err := x.partyKey("leg", parts[0])
		if err != nil {
			return t, nil, err
		}
		tk, _, err := x.partyKey("leg", parts[1])
		if err != nil {
			return t, nil, err
		}
		spec, err := x.legSpec(parts[2])
		if err != nil {
			return t, nil, fmt.Errorf("--leg %q: %w", v, err)
		}
		t.Legs = append(t.Legs, spec.Leg(fk.Public().Address(), tk.Public().Address()))
		if !slices.ContainsFunc(keys, func(k crypto.PrivateKey) bool { return k.Public().Address() == fk.Public().Address() }) {
			keys = append(keys, fk)
		}
	}
	return t, keys, nil
}

// legFlag reads flag name, a CHAIN:ASSET:AMOUNT leg, with parse.
func legFlag(c *cli.Context, name string, parse func(string) (settlement.LegSpec, error)) (settlement.LegSpec, error) {
	v := c.String(name)
	if v == "" {
		return settlement.LegSpec{}, fmt.Errorf("missing --%s: give CHAIN:ASSET:AMOUNT, e.g. alpha:USD:100", name)
	}
	s, err := parse(v)
	if err != nil {
		return s, fmt.Errorf("--%s: %w", name, err)
	}
	return s, nil
}

// legSpec parses a CHAIN:ASSET:AMOUNT leg as settlement.ParseLeg does, but
// an amount with a point is in whole units of the asset (the rule of every
// --amount), its decimals read from the leg's chain.
func (x *xenv) legSpec(v string) (settlement.LegSpec, error) {
	parts := strings.Split(v, ":")
	if len(parts) == 3 && strings.Contains(parts[2], ".") {
		chain, name := strings.TrimSpace(parts[0]), strings.TrimSpace(parts[1])
		c := x.clients[chain]
		if c == nil {
			return settlement.LegSpec{}, fmt.Errorf("%w: leg %q: chain %q is not among %v", settlement.ErrInvalid, v, chain, x.chainIDs())
		}
		d, err := assetDef(x.ctx(), c, name)
		if err != nil {
			return settlement.LegSpec{}, fmt.Errorf("leg %q: %w", v, err)
		}
		n, err := asset.ParseAmount(strings.TrimSpace(parts[2]), d.Decimals)
		if err != nil {
			return settlement.LegSpec{}, fmt.Errorf("%w: leg %q: %v", settlement.ErrInvalid, v, err)
		}
		parts[2] = strconv.FormatUint(n, 10)
		v = strings.Join(parts, ":")
	}
	return settlement.ParseLeg(v)
}

func settleStatusCommand(group string) *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show a crosschain transaction's state on each of its chains",
		UsageText: "plug " + group + " status ID|--ref R --party P [--testnet DIR | --node CHAIN=URL ... | --network FILE] [--xtx FILE] [--prove] [--wait]\n\n" +
			"plug " + group + " status 3f2a…91c0 --testnet ./tn                # the full id, from any machine\n" +
			"plug " + group + " status 3f2a91c04b7e --testnet ./tn             # a prefix: the trade store, else the chains' indexes\n" +
			"plug " + group + " status --ref T-42 --party alice --testnet ./tn --prove --output json",
		Description: "Finds the trade on the chains: with its full id (64 hex digits) the terms are read from\n" +
			"xchain/xtx/ID on the first chain that holds them and must hash to the id; with --ref R --party P the\n" +
			"chains' record of P's reference R names it. A prefix of the id (at least 8 hex digits, such as the 12\n" +
			"the tools print) is looked up in the store `plug settle` records trades in, else in the chains'\n" +
			"transaction indexes (their crosschain steps). --xtx gives the transaction as a JSON file. Then it reads xchain/leg/ID/N on\n" +
			"each leg's chain and xchain/decision/ID on the coordinator. Legs are pending, prepared, refused,\n" +
			"committed or aborted; the trade pending, prepared, committed or aborted, and final once every leg\n" +
			"has finished. --prove verifies every read against a certified header. The exit code is 0 whenever\n" +
			"the trade could be read, whatever its state (an aborted trade too); with --wait, 1 when it is not\n" +
			"final in time.",
		Flags: xchainFlags(
			networkFlag(),
			&cli.StringFlag{Name: "xtx", Usage: "JSON file of the crosschain transaction (an XTx, or a record of the store)"},
			&cli.StringFlag{Name: "ref", Usage: "find the trade by its reference on the chains (with --party)"},
			&cli.StringFlag{Name: "party", Usage: "whose reference --ref is: a paying party of the trade, as a keyring key or an address"},
			&cli.BoolFlag{Name: "prove", Usage: "verify each record (or its absence) with a Merkle proof against a certified header"},
			&cli.BoolFlag{Name: "wait", Usage: "wait until the transaction is final"},
			&cli.DurationFlag{Name: "timeout", Value: 90 * time.Second, Usage: "how long --wait waits"},
		),
		Action: func(c *cli.Context) error {
			x, err := newLookupEnv(c)
			if err != nil {
				return err
			}
			f, err := x.findTrade(c, group)
			if err != nil {
				return err
			}
			var st *settlement.Status
			if c.Bool("prove") {
				st, err = settlement.Query(x.ctx(), &f.rec.XTx, x.readers(), true)
			} else {
				st, err = x.waitFinal(&f.rec.XTx, c.Bool("wait"), c.Duration("timeout"))
			}
			if err != nil {
				return err
			}
			return x.emitStatus(settleOut{Status: st, Kind: f.rec.Kind, Found: f}, statusReport, c.Bool("wait"), c.Duration("timeout"))
		},
	}
}
