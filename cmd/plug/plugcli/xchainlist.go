package plugcli

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/settlement"
)

// Finding trades on the chains themselves: every node keeps an index of its
// committed transactions by the accounts, assets and crosschain transactions
// they name (index.db, GET /v1/txs), and every crosschain step (prepare,
// decide, finish, alone or in a batch) carries its XTx's terms. A party's
// trades are the XTxs of the steps that name it on any chain.

// xchainTypes are the transform types whose transactions carry XTxs.
var xchainTypes = []string{crosschain.TypePrepare, crosschain.TypeDecide, crosschain.TypeFinish, crosschain.TypeBatch}

// defaultMaxScan bounds how many indexed transactions a search reads per chain.
const defaultMaxScan = 100_000

// chainSearch reads the chains' indexes for trades.
type chainSearch struct {
	terms   []transform.Term // what an indexed transaction must name (empty: by type)
	since   time.Time
	maxScan int
	keep    func(*crosschain.XTx) bool
}

// searchTrades runs s on every chain: the XTxs its steps carry that s.keep
// keeps, by ID, and how many transactions it read. A chain whose nodes keep no
// index is an error that says so.
func (x *xenv) searchTrades(s chainSearch) (map[hash.Hash]*crosschain.XTx, int, error) {
	reg := app.Registry()
	found := map[hash.Hash]*crosschain.XTx{}
	scanned := 0
	var sinceMs int64
	if !s.since.IsZero() {
		sinceMs = s.since.UnixMilli()
	}
	queries := [][]transform.Term{s.terms}
	if len(s.terms) == 0 {
		queries = nil
		for _, t := range xchainTypes {
			queries = append(queries, []transform.Term{{Kind: transform.TermType, Value: t}})
		}
	}
	for _, chain := range x.chainIDs() {
		c := x.clients[chain]
		for _, terms := range queries {
			var after *gateway.TxPos
			for read := 0; read < s.maxScan; {
				page, err := c.Txs(x.ctx(), gateway.TxQuery{Terms: terms, FromTime: sinceMs, After: after, Limit: 500})
				if errors.Is(err, client.ErrNotFound) {
					return nil, scanned, fmt.Errorf("chain %s: %w: its node keeps no transaction index ([storage] index = false); "+
						"ask a node that keeps one", chain, err)
				}
				if err != nil {
					return nil, scanned, fmt.Errorf("chain %s: %w", chain, err)
				}
				for _, it := range page.Txs {
					read++
					if it.TxResult == nil || it.Tx == nil || !slices.Contains(xchainTypes, it.Tx.Body.Type) {
						continue
					}
					tr, err := reg.Decode(it.Tx.Body.Type, it.Tx.Body.Payload)
					if err != nil {
						continue // committed, so it decoded on chain: another binary's transform
					}
					for _, xt := range crosschain.StepXTxs(tr) {
						if s.keep == nil || s.keep(xt) {
							c := *xt
							found[xt.ID()] = &c
						}
					}
				}
				scanned += len(page.Txs)
				if page.Next == "" {
					break
				}
				pos, err := gateway.ParseCursor(page.Next)
				if err != nil {
					return nil, scanned, fmt.Errorf("chain %s: %w", chain, err)
				}
				after = &pos
			}
		}
	}
	return found, scanned, nil
}

// searchPrefix finds on the chains the trade whose id starts with prefix,
// among the crosschain steps since since (all of them when zero).
func (x *xenv) searchPrefix(prefix string, since time.Time) (hash.Hash, error) {
	found, scanned, err := x.searchTrades(chainSearch{since: since, maxScan: defaultMaxScan,
		keep: func(xt *crosschain.XTx) bool { return strings.HasPrefix(xt.ID().String(), prefix) }})
	if err != nil {
		return hash.Hash{}, err
	}
	switch len(found) {
	case 0:
		return hash.Hash{}, fmt.Errorf("no trade with an id starting %s on the chains %v (%d crosschain transactions read): "+
			"check the id, or give the full id or --ref R --party P", prefix, x.chainIDs(), scanned)
	case 1:
		for id := range found {
			return id, nil
		}
	}
	var ids []string
	for id := range found {
		ids = append(ids, id.String()[:16])
	}
	slices.Sort(ids)
	return hash.Hash{}, fmt.Errorf("%d trades have an id starting %s: %s: give more digits", len(found), prefix, strings.Join(ids, ", "))
}

// listRow is one trade of `plug xchain list`.
type listRow struct {
	ID           string                 `json:"id"`
	Ref          string                 `json:"ref,omitempty"`
	Status       settlement.State       `json:"status"`
	Final        bool                   `json:"final"`
	Coordinator  string                 `json:"coordinator"`
	Deadline     int64                  `json:"deadline"`
	DeadlineTime string                 `json:"deadline_time"`
	DecidedAt    int64                  `json:"decided_at,omitempty"`
	DecidedTime  string                 `json:"decided_at_time,omitempty"`
	Legs         []settlement.LegStatus `json:"legs"`
	// LegAmounts are the legs' amounts in whole units ("0.10 EUR").
	LegAmounts []string `json:"leg_amounts"`
	Reason     string   `json:"reason,omitempty"`
}

// listOut is `plug xchain list --output json`.
type listOut struct {
	Party  crypto.Address `json:"party"`
	Trades []listRow      `json:"trades"`
	// Next is the id to pass as --after for the following page; empty on
	// the last one.
	Next string `json:"next,omitempty"`
	// Scanned is how many indexed transactions were read on the chains.
	Scanned int `json:"scanned"`
}

func xchainListCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list a party's trades from the chains' transaction indexes",
		UsageText: "plug xchain list --party P [--state S] [--since T] [--asset A] [--limit N] [--after ID] [--testnet DIR | --node CHAIN=URL ... | --network FILE]\n\n" +
			"plug xchain list --testnet ./tn --party alice\n" +
			"plug xchain list --testnet ./tn --party alice --state committed --since 24h --output json\n" +
			"plug xchain list --node alpha=http://10.0.0.5:26657 --node beta=http://10.0.1.5:26657 --party 3f2a…c9 --asset USD",
		Description: "Reads, on every chain, the node's index of committed transactions (GET /v1/txs) for the\n" +
			"crosschain steps that name P (a prepare, decide or finish of a leg P pays or receives on that\n" +
			"chain), takes the trades they carry, and reads each one's state as `plug xchain status` does.\n" +
			"Works from any machine: nothing of the submitter's is needed. Newest deadline first, --limit per\n" +
			"page; the output's next (an id) is --after of the following page. --since bounds the steps by block\n" +
			"time. The exit code is 0 whenever the chains could be read.",
		Flags: xchainFlags(
			networkFlag(),
			&cli.StringFlag{Name: "party", Usage: "the party: a keyring key or an address"},
			&cli.StringFlag{Name: "state", Usage: "only trades in this state: pending, prepared, committed or aborted"},
			&cli.StringFlag{Name: "since", Usage: "only trades with a step since T: an RFC 3339 time, a date (2026-12-01) or a duration back from now (24h)"},
			&cli.StringFlag{Name: "asset", Usage: "only trades with a leg in this asset"},
			&cli.IntFlag{Name: "limit", Value: 50, Usage: "trades per page"},
			&cli.StringFlag{Name: "after", Usage: "the next of the previous page: list the trades after this id"},
		),
		Action: xchainList,
	}
}

func xchainList(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: give the party with --party", c.Args().First())
	}
	x, err := newLookupEnv(c)
	if err != nil {
		return err
	}
	party, since, err := x.partySince(c)
	if err != nil {
		return err
	}
	state := settlement.State(c.String("state"))
	switch state {
	case "", crosschain.Pending, crosschain.Prepared, crosschain.Committed, crosschain.Aborted:
	default:
		return fmt.Errorf("--state %q: want pending, prepared, committed or aborted", state)
	}
	limit := c.Int("limit")
	if limit <= 0 {
		return errors.New("--limit must be positive")
	}
	asset := c.String("asset")
	terms := []transform.Term{transform.AccountTerm(party)}
	if asset != "" {
		terms = append(terms, transform.Term{Kind: transform.TermAsset, Value: asset})
	}
	found, scanned, err := x.searchTrades(chainSearch{terms: terms, since: since, maxScan: defaultMaxScan,
		keep: func(xt *crosschain.XTx) bool {
			return involves(xt, party) && (asset == "" || slices.ContainsFunc(xt.Legs, func(l crosschain.Leg) bool { return l.Asset == asset }))
		}})
	if err != nil {
		return err
	}
	xts := make([]*crosschain.XTx, 0, len(found))
	for _, xt := range found {
		xts = append(xts, xt)
	}
	// Newest deadline first, then by id: a stable order to page through.
	slices.SortFunc(xts, func(a, b *crosschain.XTx) int {
		if c := cmp.Compare(b.Deadline, a.Deadline); c != 0 {
			return c
		}
		return strings.Compare(a.ID().String(), b.ID().String())
	})
	if after := c.String("after"); after != "" {
		i := slices.IndexFunc(xts, func(xt *crosschain.XTx) bool { return xt.ID().String() == after })
		if i < 0 {
			return fmt.Errorf("--after %s: not among the party's trades (give the next of the previous page)", after)
		}
		xts = xts[i+1:]
	}
	out := listOut{Party: party, Trades: []listRow{}, Scanned: scanned}
	amounts := x.legAmounts()
	for i, xt := range xts {
		if len(out.Trades) == limit {
			out.Next = xts[i-1].ID().String()
			break
		}
		st, err := settlement.Query(x.ctx(), xt, x.readers(), false)
		if err != nil {
			return fmt.Errorf("trade %s: %w", xt.ID().String()[:12], err)
		}
		if state != "" && st.State != state {
			continue
		}
		out.Trades = append(out.Trades, listRow{ID: st.ID, Ref: st.Ref, Status: st.State, Final: st.Final, Coordinator: st.Coordinator,
			Deadline: st.Deadline, DeadlineTime: st.DeadlineTime, DecidedAt: st.DecidedAt, DecidedTime: st.DecidedAtTime,
			Legs: st.Legs, LegAmounts: amounts(st.Legs), Reason: st.Reason})
	}
	return x.out.Emit(out, func(w io.Writer) error {
		var rows [][]string
		for _, t := range out.Trades {
			rows = append(rows, []string{t.ID[:12], t.Ref, string(t.Status), t.DeadlineTime, t.DecidedTime, legsSummary(t.Legs)})
		}
		if err := x.out.Table([]string{"ID", "REF", "STATUS", "DEADLINE", "DECIDED", "LEGS"}, rows); err != nil {
			return err
		}
		if out.Next != "" {
			_, err := fmt.Fprintf(w, "more: --after %s\n", out.Next)
			return err
		}
		return nil
	})
}
