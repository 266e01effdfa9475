package plugcli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/settlement"
)

func settleBatchCommand() *cli.Command {
	return &cli.Command{
		Name:  "batch",
		Usage: "settle a batch of transfers as one transaction of net transfers, all or nothing",
		UsageText: "plug settle batch (--trade FROM:TO:CHAIN:ASSET:AMOUNT ... | --file TRADES.json) [flags]\n\n" +
			"plug settle batch --testnet ./tn --trade alice:bob:alpha:USD:100 --trade bob:carol:alpha:USD:100 --trade carol:alice:alpha:USD:30 --wait\n" +
			"plug settle batch --testnet ./tn --file trades.json --coordinator alpha --wait --output json",
		Description: "Each --trade is a one-leg trade; --file holds a JSON list of trades, each {\"legs\": [{\"from\": KEY,\n" +
			"\"to\": KEY, \"chain\": C, \"asset\": A, \"amount\": N}, ...]}. Per chain and asset, every party's net\n" +
			"position is computed and settled by as few transfers as possible, in one crosschain transaction\n" +
			"(docs/settlement.md, \"Batch netting\"). Only parties with a net debit pay, so only they sign.",
		Flags: tradeFlags(
			&cli.StringSliceFlag{Name: "trade", Usage: "a transfer FROM:TO:CHAIN:ASSET:AMOUNT (repeat)"},
			&cli.StringFlag{Name: "file", Usage: "JSON file of trades (see above)"},
		),
		Action: func(c *cli.Context) error {
			return tradeAction(c, func(x *xenv) (settlement.Trade, []crypto.PrivateKey, error) {
				trades, err := batchTrades(x, c.StringSlice("trade"), c.String("file"))
				if err != nil {
					return settlement.Trade{}, nil, err
				}
				b := settlement.Batch(trades, "")
				if len(b.Legs) == 0 {
					return b, nil, fmt.Errorf("the %d trades net to zero on every chain and asset: nothing to settle", len(trades))
				}
				var keys []crypto.PrivateKey
				for _, l := range b.Legs {
					if slices.ContainsFunc(keys, func(k crypto.PrivateKey) bool { return k.Public().Address() == l.From }) {
						continue
					}
					k, _, err := x.partyKey("trade", l.From.String())
					if err != nil {
						return b, nil, err
					}
					keys = append(keys, k)
				}
				return b, keys, nil
			})
		},
	}
}

// batchTrades reads the trades of a batch from --trade and --file.
func batchTrades(x *xenv, flags []string, file string) ([]settlement.Trade, error) {
	var trades []settlement.Trade
	for _, v := range flags {
		parts := strings.SplitN(v, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("--trade %q: want FROM:TO:CHAIN:ASSET:AMOUNT, e.g. alice:bob:alpha:USD:10", v)
		}
		spec, err := settlement.ParseLeg(parts[2])
		if err != nil {
			return nil, fmt.Errorf("--trade %q: %w", v, err)
		}
		from, _, err := x.account("trade", parts[0])
		if err != nil {
			return nil, err
		}
		to, _, err := x.account("trade", parts[1])
		if err != nil {
			return nil, err
		}
		trades = append(trades, settlement.Trade{Legs: []crosschain.Leg{spec.Leg(from, to)}})
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		var in []struct {
			Legs []struct {
				From, To, Chain, Asset string
				Amount                 uint64
			} `json:"legs"`
		}
		if err := json.Unmarshal(b, &in); err != nil {
			return nil, fmt.Errorf("--file %s: %w (want a JSON list of {\"legs\": [...]})", file, err)
		}
		for i, t := range in {
			var tr settlement.Trade
			for j, l := range t.Legs {
				where := fmt.Sprintf("%s: trade %d leg %d", file, i, j)
				spec, err := settlement.ParseLeg(l.Chain + ":" + l.Asset + ":" + strconv.FormatUint(l.Amount, 10))
				if err != nil {
					return nil, fmt.Errorf("%s: %w", where, err)
				}
				from, _, err := x.account(where+" from", l.From)
				if err != nil {
					return nil, err
				}
				to, _, err := x.account(where+" to", l.To)
				if err != nil {
					return nil, err
				}
				tr.Legs = append(tr.Legs, spec.Leg(from, to))
			}
			if err := tr.Check(); err != nil {
				return nil, fmt.Errorf("%s: trade %d: %w", file, i, err)
			}
			trades = append(trades, tr)
		}
	}
	if len(trades) == 0 {
		return nil, errors.New("no trades: give --trade FROM:TO:CHAIN:ASSET:AMOUNT (repeat) or --file TRADES.json")
	}
	return trades, nil
}
