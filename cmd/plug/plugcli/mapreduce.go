package plugcli

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/mapreduce"
)

// queryMapReduceCommand returns `plug query mapreduce`.
func queryMapReduceCommand() *cli.Command {
	return &cli.Command{
		Name:  "mapreduce",
		Usage: "run a JavaScript map-reduce query over committed transactions, on the node",
		UsageText: "plug query mapreduce --file Q.js [--account A] [--asset X] [--type T] [--from H] [--to H]\n\n" +
			"plug query mapreduce --testnet ./tn --file volume.js --type asset/transfer --asset USD --output json",
		Description: "Q.js defines function map(tx, emit) and, optionally, function reduce(key, values); map sees each\n" +
			"committed transaction as GET /v1/tx/{id} renders it, with its block's time and its transform decoded\n" +
			"(docs/queries.md). The answer is {key: value}, keys sorted, with the transactions scanned and the time\n" +
			"taken. The node bounds the query's time, what it reads and emits, and how many run at once.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "file", Usage: "the query's JavaScript file (- for stdin)"},
			&cli.StringFlag{Name: "account", Usage: "only transactions this account signed: key name or address"},
			&cli.StringFlag{Name: "asset", Usage: "only transactions whose transform names this asset"},
			&cli.StringFlag{Name: "type", Usage: "only transactions of this transform type, e.g. asset/transfer"},
			&cli.Uint64Flag{Name: "from", Usage: "first height", DefaultText: "1"},
			&cli.Uint64Flag{Name: "to", Usage: "last height", DefaultText: "the latest committed"},
			&cli.DurationFlag{Name: "timeout", Usage: "the query's time budget (the node caps it at its [query] timeout)", DefaultText: "2s"},
			&cli.IntFlag{Name: "max-txs", Usage: "the most transactions the query may read (the node caps it)", DefaultText: "1000000"},
		}, clientFlags()...),
		Action: clientAction(0, func(e *env) error {
			file, err := needString(e.c, "file", "the query's JavaScript file")
			if err != nil {
				return err
			}
			var script []byte
			if file == "-" {
				script, err = io.ReadAll(os.Stdin)
			} else {
				script, err = os.ReadFile(file)
			}
			if err != nil {
				return fmt.Errorf("--file: %w", err)
			}
			req := &gateway.QueryRequest{Script: string(script), Filter: mapreduce.Filter{
				From: e.c.Uint64("from"), To: e.c.Uint64("to"), Type: e.c.String("type"), Asset: e.c.String("asset")}}
			if v := e.c.String("account"); v != "" {
				addr, _, err := e.account("account", v)
				if err != nil {
					return err
				}
				req.Account = addr.String()
			}
			if e.c.IsSet("timeout") || e.c.IsSet("max-txs") {
				req.Limits = &gateway.QueryLimits{TimeoutMS: e.c.Duration("timeout").Milliseconds(), MaxTxs: e.c.Int("max-txs")}
			}
			res, err := e.client.Query(e.ctx(), req)
			if err != nil {
				return err
			}
			return e.out.Emit(res, func(w io.Writer) error {
				keys := make([]string, 0, len(res.Results))
				for k := range res.Results {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				rows := make([][]string, len(keys))
				for i, k := range keys {
					rows[i] = []string{k, string(res.Results[k])}
				}
				if err := e.out.Table([]string{"KEY", "VALUE"}, rows); err != nil {
					return err
				}
				for _, l := range res.Logs {
					fmt.Fprintln(w, "log:", l)
				}
				_, err := fmt.Fprintf(w, "%s transactions scanned (heights %d-%d), %s emits, %s keys, %.1f ms\n",
					strconv.Itoa(res.Stats.TxsScanned), res.From, res.To, strconv.Itoa(res.Stats.Emits),
					strconv.Itoa(res.Stats.Keys), res.Stats.ElapsedMS)
				return err
			})
		}),
	}
}
