package plugcli

import (
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/settlement"
)

// `plug settle history`: a party's trades for reconciliation, each checked
// on the chains with proofs: those of the local trade store, and those the
// chains' transaction indexes name (searchTrades).

// historyRow is one trade of `plug settle history`.
type historyRow struct {
	ID     string          `json:"id"`
	Ref    string          `json:"ref,omitempty"`
	Kind   settlement.Kind `json:"kind,omitempty"`
	Status string          `json:"status"`
	Final  bool            `json:"final"`
	// Submitted is when this machine recorded the trade (Unix ms).
	Submitted      int64                  `json:"submitted"`
	SubmittedTime  string                 `json:"submitted_time"`
	Coordinator    string                 `json:"coordinator"`
	Deadline       int64                  `json:"deadline"`
	DeadlineTime   string                 `json:"deadline_time"`
	DecisionHeight uint64                 `json:"decision_height,omitempty"`
	DecidedAt      int64                  `json:"decided_at,omitempty"`
	DecidedAtTime  string                 `json:"decided_at_time,omitempty"`
	Legs           []settlement.LegStatus `json:"legs"`
	// LegAmounts are the legs' amounts in whole units of their assets
	// ("0.10 EUR"), in leg order; empty where a chain cannot tell the decimals.
	LegAmounts []string `json:"leg_amounts"`
	Reason     string   `json:"reason,omitempty"`
	// FoundOn is the chain whose xchain/xtx/ID gave the terms, or "index"
	// for a trade found through the chains' transaction indexes.
	FoundOn string `json:"found_on"`
	// Proof is the coordinator's read of the decision (or of its absence).
	Proof *settlement.ProofRef `json:"proof,omitempty"`
}

// historyOut is `plug settle history --output json`.
type historyOut struct {
	Party  crypto.Address `json:"party"`
	Since  string         `json:"since,omitempty"`
	Trades []historyRow   `json:"trades"`
	// NotOnChain lists the trades of the store that no chain holds (never
	// prepared anywhere): unverifiable, so not rows.
	NotOnChain []string `json:"not_on_chain,omitempty"`
}

func settleHistoryCommand() *cli.Command {
	return &cli.Command{
		Name:  "history",
		Usage: "a party's trades, from this machine's store and the chains' indexes, verified on the chains (for reconciliation)",
		UsageText: "plug settle history --party P [--since T] [--testnet DIR | --node CHAIN=URL ... | --network FILE] [--output text|json|csv]\n\n" +
			"plug settle history --testnet ./tn --party alice --output csv > alice.csv\n" +
			"plug settle history --testnet ./tn --party alice --since 24h --output json",
		Description: "Lists the trades in which P pays or receives: those of the trade store (what `plug settle`\n" +
			"submitted from this machine, see --store) and those the chains' transaction indexes name (the steps\n" +
			"of P's legs, as `plug xchain list` finds them). Each is read on the chains: its terms from\n" +
			"xchain/xtx/ID (they must hash to the id), its legs and decision with Merkle proofs against certified\n" +
			"headers. A row gives the status, the legs, the times (RFC 3339, UTC), the decision height and the\n" +
			"proof: the coordinator, the height and the state root the decision was proven at. Trades of the store\n" +
			"that no chain holds are named on standard error and left out.",
		Flags: xchainFlags(
			networkFlag(),
			&cli.StringFlag{Name: "party", Usage: "the party: a keyring key or an address"},
			&cli.StringFlag{Name: "since", Usage: "only trades recorded (or, found on the chains, with a step) since T: an RFC 3339 time, a date (2026-12-01) or a duration back from now (24h)"},
		),
		Action: settleHistory,
	}
}

func settleHistory(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: give the party with --party", c.Args().First())
	}
	asCSV := false
	for _, cc := range c.Lineage() {
		if cc.App != nil && slices.Contains(cc.LocalFlagNames(), "output") && cc.String("output") == "csv" {
			asCSV = true
			if err := cc.Set("output", outputText); err != nil {
				return err
			}
		}
	}
	x, err := newLookupEnv(c)
	if err != nil {
		return err
	}
	party, since, err := x.partySince(c)
	if err != nil {
		return err
	}
	recs, err := x.storeRecords()
	if err != nil {
		return err
	}
	out := historyOut{Party: party, Trades: []historyRow{}}
	if !since.IsZero() {
		out.Since = since.UTC().Format(time.RFC3339)
	}
	for _, r := range recs {
		if !involves(&r.XTx, party) || r.Submitted.Before(since) {
			continue
		}
		id := r.XTx.ID()
		t, err := settlement.LookupID(x.ctx(), x.readers(), x.chainIDs(), id, true)
		if errors.Is(err, settlement.ErrTradeNotFound) {
			out.NotOnChain = append(out.NotOnChain, id.String())
			x.out.Warn("trade %s of the store is on none of the chains %v: left out", id.String()[:12], x.chainIDs())
			continue
		}
		if err != nil {
			return fmt.Errorf("trade %s: %w", id.String()[:12], err)
		}
		st, err := settlement.Query(x.ctx(), &t.XTx, x.readers(), true)
		if err != nil {
			return fmt.Errorf("trade %s: %w", id.String()[:12], err)
		}
		out.Trades = append(out.Trades, historyRow{ID: st.ID, Ref: st.Ref, Kind: r.Kind, Status: string(st.State), Final: st.Final,
			Submitted: r.Submitted.UnixMilli(), SubmittedTime: crosschain.FormatMillis(r.Submitted.UnixMilli()),
			Coordinator: st.Coordinator, Deadline: st.Deadline, DeadlineTime: st.DeadlineTime,
			DecisionHeight: st.DecisionHeight, DecidedAt: st.DecidedAt, DecidedAtTime: st.DecidedAtTime,
			Legs: st.Legs, Reason: st.Reason, FoundOn: t.Chain, Proof: st.DecisionProof})
	}
	// The trades this machine never recorded, from the chains' indexes.
	seen := map[string]bool{}
	for _, t := range out.Trades {
		seen[t.ID] = true
	}
	for _, id := range out.NotOnChain {
		seen[id] = true
	}
	found, _, err := x.searchTrades(chainSearch{terms: []transform.Term{transform.AccountTerm(party)}, since: since, maxScan: defaultMaxScan,
		keep: func(xt *crosschain.XTx) bool { return involves(xt, party) }})
	if err != nil {
		return fmt.Errorf("search the chains for %s's trades: %w", party, err)
	}
	for id, xt := range found {
		if seen[id.String()] {
			continue
		}
		st, err := settlement.Query(x.ctx(), xt, x.readers(), true)
		if err != nil {
			return fmt.Errorf("trade %s: %w", id.String()[:12], err)
		}
		out.Trades = append(out.Trades, historyRow{ID: st.ID, Ref: st.Ref, Status: string(st.State), Final: st.Final,
			Coordinator: st.Coordinator, Deadline: st.Deadline, DeadlineTime: st.DeadlineTime,
			DecisionHeight: st.DecisionHeight, DecidedAt: st.DecidedAt, DecidedAtTime: st.DecidedAtTime,
			Legs: st.Legs, Reason: st.Reason, FoundOn: "index", Proof: st.DecisionProof})
	}
	amounts := x.legAmounts()
	for i := range out.Trades {
		out.Trades[i].LegAmounts = amounts(out.Trades[i].Legs)
	}
	// By submission on this machine, then by deadline (trades found on the
	// chains only have no submission time).
	slices.SortStableFunc(out.Trades, func(a, b historyRow) int {
		return cmp.Or(cmp.Compare(a.Submitted, b.Submitted), cmp.Compare(a.Deadline, b.Deadline), strings.Compare(a.ID, b.ID))
	})
	if asCSV {
		return writeHistoryCSV(c.App.Writer, out.Trades)
	}
	return x.out.Emit(out, func(w io.Writer) error {
		var rows [][]string
		for _, t := range out.Trades {
			p := ""
			if t.Proof != nil {
				p = t.Proof.Chain + "@" + strconv.FormatUint(t.Proof.Height, 10) + " " + t.Proof.StateRoot[:12] + "…"
			}
			rows = append(rows, []string{t.ID[:12], t.Ref, string(t.Status), t.SubmittedTime, t.DeadlineTime,
				heightOrEmpty(t.DecisionHeight), legsSummary(t.Legs), p})
		}
		return x.out.Table([]string{"ID", "REF", "STATUS", "SUBMITTED", "DEADLINE", "DECIDED", "LEGS", "PROOF"}, rows)
	})
}

// csvHeader is the header of `plug settle history --output csv`.
var csvHeader = []string{"id", "ref", "kind", "status", "final", "submitted_time", "coordinator", "deadline_time",
	"decision_height", "decided_at_time", "legs", "reason", "proof_chain", "proof_height", "proof_state_root", "proof_verified", "leg_amounts"}

func writeHistoryCSV(w io.Writer, trades []historyRow) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	for _, t := range trades {
		var pc, ph, pr, pv string
		if p := t.Proof; p != nil {
			pc, ph, pr, pv = p.Chain, strconv.FormatUint(p.Height, 10), p.StateRoot, strconv.FormatBool(p.Verified)
		}
		var legs []string
		for _, l := range t.Legs {
			legs = append(legs, fmt.Sprintf("%d %s:%s:%d %s>%s %s", l.Leg, l.Chain, l.Asset, l.Amount, l.From, l.To, l.Status))
		}
		if err := cw.Write([]string{t.ID, t.Ref, string(t.Kind), t.Status, strconv.FormatBool(t.Final), t.SubmittedTime,
			t.Coordinator, t.DeadlineTime, heightOrEmpty(t.DecisionHeight), t.DecidedAtTime, strings.Join(legs, "; "), t.Reason,
			pc, ph, pr, pv, strings.Join(t.LegAmounts, "; ")}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func heightOrEmpty(h uint64) string {
	if h == 0 {
		return ""
	}
	return strconv.FormatUint(h, 10)
}

// legsSummary is "alpha:EUR:100 committed, beta:USD:110 committed".
func legsSummary(legs []settlement.LegStatus) string {
	var s []string
	for _, l := range legs {
		s = append(s, fmt.Sprintf("%s:%s:%d %s", l.Chain, l.Asset, l.Amount, l.Status))
	}
	return strings.Join(s, ", ")
}

// involves reports whether p pays or receives in a leg of x.
func involves(x *crosschain.XTx, p crypto.Address) bool {
	return slices.ContainsFunc(x.Legs, func(l crosschain.Leg) bool { return l.From == p || l.To == p })
}

// partySince reads --party (required) and --since (zero when absent) of the
// commands that list a party's trades.
func (x *xenv) partySince(c *cli.Context) (crypto.Address, time.Time, error) {
	if c.String("party") == "" {
		return crypto.Address{}, time.Time{}, errors.New("missing --party: whose trades to list (a keyring key or an address)")
	}
	party, err := x.partyAddress(c.String("party"))
	if err != nil {
		return crypto.Address{}, time.Time{}, err
	}
	var since time.Time
	if s := c.String("since"); s != "" {
		if since, err = parseSince(s, time.Now()); err != nil {
			return crypto.Address{}, time.Time{}, err
		}
	}
	return party, since, nil
}

// parseSince reads --since: an RFC 3339 time, a date, or a duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want an RFC 3339 time (2026-12-01T09:00:00Z), a date (2026-12-01) or a duration back from now (24h)", s)
}

// legAmounts returns a function writing legs' amounts in whole units of their
// assets, each asset's decimals read once from its chain.
func (x *xenv) legAmounts() func([]settlement.LegStatus) []string {
	shown := map[string]func(uint64) string{}
	return func(legs []settlement.LegStatus) []string {
		out := make([]string, len(legs))
		for i, l := range legs {
			k := l.Chain + "/" + l.Asset
			f := shown[k]
			if f == nil {
				f = func(uint64) string { return "" }
				if c := x.clients[l.Chain]; c != nil {
					f = displayer(x.ctx(), c, l.Asset)
				}
				shown[k] = f
			}
			out[i] = f(l.Amount)
		}
		return out
	}
}
