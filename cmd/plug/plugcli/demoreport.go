package plugcli

import (
	"fmt"

	"strconv"
	"strings"
	"time"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/settlement"
	"github.com/plugchain/plug/testnet"
)

// What `plug demo` reports: its JSON story, names for addresses, and the
// balance tables printed before and after the trades.

// demoStory is `plug demo --output json`: the whole story.
type demoStory struct {
	Dir  string `json:"dir"`
	Kept bool   `json:"kept"`
	// Chains and Relays of the testnet; LightClients is how many on-chain
	// light clients were created for the relay.
	Chains       []demoChain `json:"chains"`
	Relays       []string    `json:"relays"`
	LightClients int         `json:"light_clients"`
	// Steps are the story's steps in order, with their durations.
	Steps          []demoStep    `json:"steps"`
	BalancesBefore []demoBalance `json:"balances_before"`
	Trades         []demoTrade   `json:"trades"`
	BalancesAfter  []demoBalance `json:"balances_after"`
	// Changes are the balances that differ between before and after.
	Changes []demoChange `json:"changes"`
	// Conservation: per chain and asset, the accounts' balances against the supply.
	Conservation []demoSupply `json:"conservation"`
	Conserved    bool         `json:"conserved"`
	// Refund is what the failing trade did to the seller's balance.
	Refund     *demoRefund `json:"refund,omitempty"`
	DurationMS int64       `json:"duration_ms"`
	// OK: every step turned out as the story tells.
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// demoChain is one chain of the demo testnet.
type demoChain struct {
	ID         string `json:"id"`
	Validators int    `json:"validators"`
}

// demoStep is one step of the story.
type demoStep struct {
	Name       string `json:"name"`
	Title      string `json:"title"`
	DurationMS int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
}

// demoBalance is one proven balance read.
type demoBalance struct {
	Chain    string `json:"chain"`
	Account  string `json:"account"`
	Address  string `json:"address"`
	Asset    string `json:"asset"`
	Balance  uint64 `json:"balance"`
	Height   uint64 `json:"height"`
	Verified bool   `json:"verified"`
}

// demoLeg is a leg's status with its parties' names.
type demoLeg struct {
	settlement.LegStatus
	FromName string `json:"from_name"`
	ToName   string `json:"to_name"`
}

// demoTrade is one settled trade.
type demoTrade struct {
	Name           string           `json:"name"`
	Kind           settlement.Kind  `json:"kind"`
	Story          string           `json:"story"`
	Expect         settlement.State `json:"expect"`
	ID             string           `json:"id"`
	Status         settlement.State `json:"status"`
	Final          bool             `json:"final"`
	Coordinator    string           `json:"coordinator"`
	DecisionHeight uint64           `json:"decision_height,omitempty"`
	Reason         string           `json:"reason,omitempty"`
	Legs           []demoLeg        `json:"legs"`
	Prepares       []prepareOut     `json:"prepares"`
	DurationMS     int64            `json:"duration_ms"`
	// OK: the trade ended final in Expect.
	OK bool `json:"ok"`
}

// demoChange is a balance that moved.
type demoChange struct {
	Chain   string `json:"chain"`
	Account string `json:"account"`
	Asset   string `json:"asset"`
	Before  uint64 `json:"before"`
	After   uint64 `json:"after"`
	Delta   int64  `json:"delta"`
}

// demoSupply compares, on one chain, the sum of the accounts' balances of an
// asset with its supply, before and after the trades.
type demoSupply struct {
	Chain        string `json:"chain"`
	Asset        string `json:"asset"`
	SupplyBefore uint64 `json:"supply_before"`
	SupplyAfter  uint64 `json:"supply_after"`
	SumBefore    uint64 `json:"sum_before"`
	SumAfter     uint64 `json:"sum_after"`
	Conserved    bool   `json:"conserved"`
}

// demoRefund is the seller's balance around the failing trade.
type demoRefund struct {
	Chain   string `json:"chain"`
	Account string `json:"account"`
	Asset   string `json:"asset"`
	Amount  uint64 `json:"amount"`
	// Before the trade; Locked right after its prepares committed (LockSeen
	// says whether the escrow was still held then); After once it is final.
	Before   uint64 `json:"before"`
	Locked   uint64 `json:"locked"`
	LockSeen bool   `json:"lock_seen"`
	After    uint64 `json:"after"`
	Refunded bool   `json:"refunded"`
}

func (d *demo) name(a crypto.Address) string {
	if n, ok := d.names[a]; ok {
		return n
	}
	return a.String()[:8] + "…"
}

// named replaces the addresses of the demo accounts in s by their names.
func (d *demo) named(s string) string {
	for a, n := range d.names {
		s = strings.ReplaceAll(s, a.String(), n)
	}
	return s
}

// printTrade prints a final trade and its legs.
func (d *demo) printTrade(t *demoTrade, took time.Duration) {
	if d.o.JSON() {
		return
	}
	line := fmt.Sprintf("    %s %s in %s", t.ID[:12], strings.ToUpper(string(t.Status)), seconds(took))
	if t.DecisionHeight > 0 {
		line += fmt.Sprintf(" (decided by %s at height %d)", t.Coordinator, t.DecisionHeight)
	}
	d.say("%s\n", line)
	if t.Reason != "" {
		d.say("    reason: %s\n", d.named(t.Reason))
	}
	rows := make([][]string, 0, len(t.Legs))
	for _, l := range t.Legs {
		h := "-"
		if l.Height > 0 {
			h = strconv.FormatUint(l.Height, 10)
		}
		rows = append(rows, []string{"    " + strconv.Itoa(l.Leg), l.Chain, l.FromName + " -> " + l.ToName,
			strconv.FormatUint(l.Amount, 10) + " " + l.Asset, l.Status, h, d.named(l.Reason)})
	}
	d.o.Table([]string{"    LEG", "CHAIN", "FROM -> TO", "AMOUNT", "STATUS", "HEIGHT", "REASON"}, rows)
}

// balances reads, with proofs, every demo account's balance of each asset on
// each chain and each asset's supply; per chain all reads are at one height.
// It returns them all (the supplies under account "supply") and the ones
// the story shows (alice's and bob's).
func (d *demo) balances() (all, shown []demoBalance, err error) {
	ctx := d.c.Context
	for _, ch := range d.x.chainIDs() {
		cl := d.x.clients[ch]
		var height uint64
		for _, a := range testnet.Assets {
			for _, name := range append(append([]string{}, demoAccounts...), "supply") {
				var v uint64
				var res *client.StateResult
				if name == "supply" {
					if res, err = cl.State(ctx, height, asset.SupplyKey(a), true); err == nil {
						err = res.Decode(&v)
					}
				} else {
					v, res, err = cl.ProvenBalance(ctx, a, d.addrs[name], height, true)
				}
				if err != nil {
					return nil, nil, fmt.Errorf("reading %s of %s on %s: %w", a, name, ch, proofHint(err))
				}
				height = res.Height
				b := demoBalance{Chain: ch, Account: name, Asset: a, Balance: v, Height: res.Height, Verified: res.Verified}
				if name != "supply" {
					b.Address = d.addrs[name].String()
				}
				all = append(all, b)
				if name == "alice" || name == "bob" {
					shown = append(shown, b)
				}
			}
		}
	}
	return all, shown, nil
}

// compare fills Changes and Conservation from the reads before and after.
func (d *demo) compare(before, after []demoBalance) {
	d.story.Changes = []demoChange{}
	type ca struct{ chain, asset string }
	sums := map[ca]*demoSupply{}
	var order []ca
	sup := func(b demoBalance) *demoSupply {
		k := ca{b.Chain, b.Asset}
		if sums[k] == nil {
			sums[k] = &demoSupply{Chain: b.Chain, Asset: b.Asset}
			order = append(order, k)
		}
		return sums[k]
	}
	for i, b := range before {
		a := after[i]
		s := sup(b)
		if b.Account == "supply" {
			s.SupplyBefore, s.SupplyAfter = b.Balance, a.Balance
			continue
		}
		s.SumBefore += b.Balance
		s.SumAfter += a.Balance
		if a.Balance != b.Balance {
			d.story.Changes = append(d.story.Changes, demoChange{Chain: b.Chain, Account: b.Account, Asset: b.Asset,
				Before: b.Balance, After: a.Balance, Delta: int64(a.Balance) - int64(b.Balance)})
		}
	}
	d.story.Conserved = true
	for _, k := range order {
		s := sums[k]
		s.Conserved = s.SumBefore == s.SupplyBefore && s.SumAfter == s.SupplyAfter && s.SupplyBefore == s.SupplyAfter
		d.story.Conserved = d.story.Conserved && s.Conserved
		d.story.Conservation = append(d.story.Conservation, *s)
	}
}

// balanceTable prints alice's and bob's balances, with the change since
// before when given.
func (d *demo) balanceTable(bs, before []demoBalance) error {
	if d.o.JSON() {
		return nil
	}
	if before == nil {
		return d.pivotTable(bs)
	}
	rows := make([][]string, 0, len(bs))
	for i, b := range bs {
		ch := "0"
		if delta := int64(b.Balance) - int64(before[i].Balance); delta != 0 {
			ch = fmt.Sprintf("%+d", delta)
		}
		rows = append(rows, []string{"    " + b.Chain, b.Account, b.Asset, strconv.FormatUint(before[i].Balance, 10),
			strconv.FormatUint(b.Balance, 10), ch, proofWord(b.Verified)})
	}
	if err := d.o.Table([]string{"    CHAIN", "ACCOUNT", "ASSET", "BEFORE", "AFTER", "CHANGE", "PROOF"}, rows); err != nil {
		return err
	}
	for _, s := range d.story.Conservation {
		verdict := "conserved"
		if !s.Conserved {
			verdict = "NOT CONSERVED"
		}
		d.say("    %s %s: alice + bob + carol = %d before and %d after, supply %d: %s\n",
			s.Chain, s.Asset, s.SumBefore, s.SumAfter, s.SupplyAfter, verdict)
	}
	return nil
}

// pivotTable prints balances as one row per chain and account, one column
// per asset (the reads of a chain share one height).
func (d *demo) pivotTable(bs []demoBalance) error {
	type row struct {
		cells    []string
		height   uint64
		verified bool
	}
	var rows []*row
	idx := map[[2]string]*row{}
	for _, b := range bs {
		k := [2]string{b.Chain, b.Account}
		r := idx[k]
		if r == nil {
			r = &row{cells: []string{"    " + b.Chain, b.Account}, verified: true}
			idx[k] = r
			rows = append(rows, r)
		}
		r.cells = append(r.cells, strconv.FormatUint(b.Balance, 10))
		r.height, r.verified = b.Height, r.verified && b.Verified
	}
	out := make([][]string, 0, len(rows))
	for _, r := range rows {
		out = append(out, append(r.cells, strconv.FormatUint(r.height, 10), proofWord(r.verified)))
	}
	return d.o.Table(append(append([]string{"    CHAIN", "ACCOUNT"}, testnet.Assets...), "HEIGHT", "PROOF"), out)
}

func proofWord(verified bool) string {
	if verified {
		return "verified"
	}
	return "NOT verified"
}

// seconds formats d as "1.2s".
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
}
