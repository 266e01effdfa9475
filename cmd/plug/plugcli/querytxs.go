package plugcli

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/chain/gateway"
)

// queryTxsOut is `plug query txs` in --output json: the node's page, and
// with --prove whether every item's inclusion proof was checked.
type queryTxsOut struct {
	*gateway.TxPage
	Verified bool `json:"verified,omitempty"`
}

func queryTxsCommand() *cli.Command {
	return &cli.Command{
		Name:  "txs",
		Usage: "find committed transactions by account, asset, type, crosschain transaction, heights or times",
		UsageText: "plug query txs [--account A] [--asset X] [--type T] [--xtx ID] [--from H|TIME] [--to H|TIME] [--limit N] [--after CURSOR] [--prove]\n\n" +
			"plug query txs --testnet ./tn --account bob --asset USD --output json\n" +
			"plug query txs --node http://127.0.0.1:26657 --type asset/transfer --from 100 --to 200\n" +
			"plug query txs --account bob --from 2026-12-01T00:00:00Z --limit 20 --after AAAAAAAAAGQAAAAB",
		Description: "Asks the node's transaction index (GET /v1/txs) for the transactions under every term given (an\n" +
			"account signed or is named by the transaction; the asset or XTx it names; its type), in height\n" +
			"order, the oldest first. --from and --to are heights or RFC 3339 times (inclusive). A page has at most\n" +
			"--limit items; the answer's next cursor, passed as --after, gives the following page. With --prove\n" +
			"each item's inclusion in its block is checked: the proof against the tx root of the header at its\n" +
			"height, that header against its certificate.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "account", Usage: "account: key name or address"},
			&cli.StringFlag{Name: "asset", Usage: "asset name"},
			&cli.StringFlag{Name: "type", Usage: "transform type, e.g. asset/transfer"},
			&cli.StringFlag{Name: "xtx", Usage: "crosschain transaction ID"},
			&cli.StringFlag{Name: "from", Usage: "first height, or RFC 3339 time"},
			&cli.StringFlag{Name: "to", Usage: "last height, or RFC 3339 time"},
			&cli.IntFlag{Name: "limit", Value: gateway.DefaultTxsLimit, Usage: fmt.Sprintf("items per page (1 to %d)", gateway.MaxTxsLimit)},
			&cli.StringFlag{Name: "after", Usage: "cursor: the next of a previous answer"},
			&cli.BoolFlag{Name: "prove", Usage: "check each transaction's inclusion proof against its header and certificate"},
		}, clientFlags()...),
		Action: clientAction(0, func(e *env) error {
			v := url.Values{}
			if s := e.c.String("account"); s != "" {
				addr, _, err := e.account("account", s)
				if err != nil {
					return err
				}
				v.Set("account", addr.String())
			}
			for _, f := range []string{"asset", "type", "xtx", "from", "to", "after"} {
				if s := e.c.String(f); s != "" {
					v.Set(f, s)
				}
			}
			v.Set("limit", strconv.Itoa(e.c.Int("limit")))
			if e.c.Bool("prove") {
				v.Set("prove", "true")
			}
			// The gateway's own parser checks the flags, so the CLI and the
			// HTTP API accept the same values.
			req, err := http.NewRequest(http.MethodGet, "/v1/txs?"+v.Encode(), nil)
			if err != nil {
				return err
			}
			q, err := gateway.ParseTxQuery(req)
			if err != nil {
				return fmt.Errorf("%w: see `plug query txs --help`", err)
			}
			page, err := e.client.Txs(e.ctx(), q)
			if err != nil {
				return err
			}
			out := queryTxsOut{TxPage: page}
			if q.Prove {
				for i := range page.Txs {
					if err := e.client.VerifyTx(e.ctx(), &page.Txs[i]); err != nil {
						return proofHint(err)
					}
				}
				out.Verified = true
			}
			return e.out.Emit(out, func(w io.Writer) error {
				rows := make([][]string, 0, len(page.Txs))
				for _, it := range page.Txs {
					typ := ""
					if it.Tx != nil {
						typ = it.Tx.Body.Type
					}
					rows = append(rows, []string{strconv.FormatUint(it.Height, 10), strconv.FormatUint(uint64(it.Index), 10),
						time.UnixMilli(it.BlockTime).UTC().Format(time.RFC3339), typ, it.Status, it.ID.String()})
				}
				if len(rows) == 0 {
					fmt.Fprintf(w, "no transactions (the index holds heights %d-%d)\n", page.IndexedFrom, page.IndexedTo)
				} else if err := e.out.Table([]string{"HEIGHT", "INDEX", "TIME", "TYPE", "STATUS", "ID"}, rows); err != nil {
					return err
				}
				if q.Prove {
					fmt.Fprintln(w, "inclusion proofs: verified (proof -> tx root -> header -> certificate)")
				}
				if page.Next != "" {
					fmt.Fprintf(w, "more: --after %s\n", page.Next)
				}
				return nil
			})
		}),
	}
}
