package settlement

import (
	"math"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/crosschain"
)

// Position is a party's net position in one asset on one chain: what it receives
// minus what it sends.
type Position struct {
	Chain string
	Asset string
	Party crypto.Address
}

// Positions returns every party's net position per chain and asset over legs
// (zero positions included).
func Positions(legs []crosschain.Leg) map[Position]*big.Int {
	out := map[Position]*big.Int{}
	add := func(p Position, n uint64, sign int) {
		v := out[p]
		if v == nil {
			v = new(big.Int)
			out[p] = v
		}
		d := new(big.Int).SetUint64(n)
		if sign < 0 {
			d.Neg(d)
		}
		v.Add(v, d)
	}
	for _, l := range legs {
		add(Position{l.Chain, l.Asset, l.From}, l.Amount, -1)
		add(Position{l.Chain, l.Asset, l.To}, l.Amount, 1)
	}
	return out
}

// Net reduces the legs of a batch of trades to net transfers: per chain and
// asset, each party with a net debit pays parties with a net credit, so every
// party's net position per asset is what the batch gives it, with at most
// (payers + receivers - 1) legs per chain and asset and no zero legs. The result
// is deterministic (ordered by chain, asset, then address). An amount above the
// uint64 range is split over several legs.
func Net(trades []Trade) []crosschain.Leg {
	var all []crosschain.Leg
	for _, t := range trades {
		all = append(all, t.Legs...)
	}
	type book struct{ chain, asset string }
	type entry struct {
		party crypto.Address
		amt   *big.Int // magnitude
	}
	pays, gets := map[book][]entry{}, map[book][]entry{}
	for p, v := range Positions(all) {
		b := book{p.Chain, p.Asset}
		switch v.Sign() {
		case -1:
			pays[b] = append(pays[b], entry{p.Party, new(big.Int).Neg(v)})
		case 1:
			gets[b] = append(gets[b], entry{p.Party, new(big.Int).Set(v)})
		}
	}
	var books []book
	for b := range pays {
		books = append(books, b)
	}
	slices.SortFunc(books, func(x, y book) int {
		if c := strings.Compare(x.chain, y.chain); c != 0 {
			return c
		}
		return strings.Compare(x.asset, y.asset)
	})
	byAddr := func(x, y entry) int { return strings.Compare(x.party.String(), y.party.String()) }
	maxLeg := new(big.Int).SetUint64(math.MaxUint64)
	var out []crosschain.Leg
	for _, b := range books {
		ps, gs := pays[b], gets[b]
		slices.SortFunc(ps, byAddr)
		slices.SortFunc(gs, byAddr)
		i, j := 0, 0
		for i < len(ps) && j < len(gs) {
			n := ps[i].amt
			if gs[j].amt.Cmp(n) < 0 {
				n = gs[j].amt
			}
			n = new(big.Int).Set(n)
			ps[i].amt.Sub(ps[i].amt, n)
			gs[j].amt.Sub(gs[j].amt, n)
			for n.Sign() > 0 {
				chunk := n
				if n.Cmp(maxLeg) > 0 {
					chunk = maxLeg
				}
				out = append(out, crosschain.Leg{Chain: b.chain, Asset: b.asset, From: ps[i].party, To: gs[j].party, Amount: chunk.Uint64()})
				n = new(big.Int).Sub(n, chunk)
			}
			if ps[i].amt.Sign() == 0 {
				i++
			}
			if gs[j].amt.Sign() == 0 {
				j++
			}
		}
	}
	return out
}

// Batch is the trade settling trades as one: their net transfers (Net). A batch
// whose trades cancel out entirely has no legs and fails Check.
func Batch(trades []Trade, ref string) Trade {
	return Trade{Kind: BatchKind, Legs: Net(trades), Ref: ref}
}

// BatchXTx is Batch(trades, ref).XTx(coordinator, deadline).
func BatchXTx(trades []Trade, ref, coordinator string, deadline time.Time) (crosschain.XTx, error) {
	return Batch(trades, ref).XTx(coordinator, deadline)
}
