package settlement

import (
	"context"
	"crypto/rand"
	"errors"
	"math/big"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/crosschain"
)

func addr(b byte) crypto.Address {
	var a crypto.Address
	a[0], a[len(a)-1] = b, b
	return a
}

var (
	alice, bob, carol = addr(1), addr(2), addr(3)
	deadline          = time.UnixMilli(1_700_000_000_000)
)

func TestParseLeg(t *testing.T) {
	got, err := ParseLeg("alpha:USD:100")
	if err != nil || got != (LegSpec{"alpha", "USD", 100}) {
		t.Fatalf("ParseLeg = %+v, %v", got, err)
	}
	if got.String() != "alpha:USD:100" {
		t.Fatalf("String = %q", got.String())
	}
	for _, bad := range []string{"", "alpha:USD", "alpha:USD:0", "alpha:USD:-1", "alpha:USD:x", "Alpha:USD:1", "alpha::1", "a:b:c:d", "alpha:US D:1"} {
		if _, err := ParseLeg(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseLeg(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestDvPXTx(t *testing.T) {
	tr := DvP(alice, bob, LegSpec{"alpha", "BOND", 10}, LegSpec{"beta", "USD", 1000})
	x, err := tr.XTx("", deadline)
	if err != nil {
		t.Fatal(err)
	}
	if x.Coordinator != "alpha" || x.Deadline != deadline.UnixMilli() || len(x.Legs) != 2 {
		t.Fatalf("xtx %+v", x)
	}
	if l := x.Legs[0]; l.From != alice || l.To != bob || l.Asset != "BOND" {
		t.Fatalf("delivery leg %+v", l)
	}
	if l := x.Legs[1]; l.From != bob || l.To != alice || l.Chain != "beta" {
		t.Fatalf("payment leg %+v", l)
	}
	// The same trade with another reference is another XTx.
	tr2 := tr
	tr2.Ref = "T-2"
	x2, _ := tr2.XTx("", deadline)
	if x.ID() == x2.ID() {
		t.Fatal("ref does not change the id")
	}
	// Signed by both parties, it verifies.
	ka, kb := key(t), key(t)
	tr3 := DvP(ka.Public().Address(), kb.Public().Address(), LegSpec{"alpha", "BOND", 1}, LegSpec{"beta", "USD", 1})
	x3, _ := tr3.XTx("beta", deadline)
	s, err := crosschain.NewSigned(x3, ka, kb)
	if err != nil || s.VerifySigs() != nil {
		t.Fatalf("signed: %v %v", err, s.VerifySigs())
	}
	if _, err := (Trade{}).XTx("", deadline); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty trade: %v", err)
	}
	if _, err := DvP(alice, alice, LegSpec{"alpha", "BOND", 1}, LegSpec{"beta", "USD", 1}).XTx("", deadline); !errors.Is(err, ErrInvalid) {
		t.Fatalf("self trade: %v", err)
	}
}

func key(t *testing.T) crypto.PrivateKey {
	k, err := crypto.GenerateKey(crypto.Ed25519, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestMatch(t *testing.T) {
	d, p := LegSpec{"alpha", "BOND", 10}, LegSpec{"beta", "USD", 1000}
	seller := Instruction{Party: alice, Trade: DvP(alice, bob, d, p), Coordinator: "beta", Deadline: deadline}
	buyerTrade := DvP(alice, bob, d, p)
	buyerTrade.Legs[0], buyerTrade.Legs[1] = buyerTrade.Legs[1], buyerTrade.Legs[0]
	buyer := Instruction{Party: bob, Trade: buyerTrade}
	x1, err := Match(seller, buyer)
	if err != nil {
		t.Fatal(err)
	}
	x2, err := Match(buyer, seller)
	if err != nil || x1.ID() != x2.ID() {
		t.Fatalf("match is not symmetric: %v", err)
	}
	if x1.Coordinator != "beta" || x1.Deadline != deadline.UnixMilli() {
		t.Fatalf("xtx %+v", x1)
	}
	bad := func(name string, a, b Instruction, want error) {
		t.Helper()
		if _, err := Match(a, b); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
	other := buyer
	other.Trade = DvP(alice, bob, d, LegSpec{"beta", "USD", 999})
	bad("amount", seller, other, ErrNoMatch)
	bad("same party", seller, seller, ErrNoMatch)
	other = buyer
	other.Coordinator = "alpha"
	bad("coordinator", seller, other, ErrNoMatch)
	other = buyer
	other.Deadline = deadline.Add(time.Second)
	bad("deadline", seller, other, ErrNoMatch)
	other = buyer
	other.Trade.Ref = "X"
	bad("ref", seller, other, ErrNoMatch)
	other = buyer
	other.Party = carol
	bad("outsider", seller, other, ErrInvalid)
	noDeadline := seller
	noDeadline.Deadline = time.Time{}
	bad("no deadline", noDeadline, buyer, ErrInvalid)
	three := Trade{Legs: []crosschain.Leg{d.Leg(alice, bob), p.Leg(bob, carol)}}
	bad("third party", Instruction{Party: alice, Trade: three, Deadline: deadline}, Instruction{Party: bob, Trade: three}, ErrNoMatch)
}

func TestNetExample(t *testing.T) {
	// alice pays bob 100, bob pays carol 100, carol pays alice 30: net alice -70, carol +70.
	trades := []Trade{
		{Legs: []crosschain.Leg{{Chain: "alpha", Asset: "USD", From: alice, To: bob, Amount: 100}}},
		{Legs: []crosschain.Leg{{Chain: "alpha", Asset: "USD", From: bob, To: carol, Amount: 100}}},
		{Legs: []crosschain.Leg{{Chain: "alpha", Asset: "USD", From: carol, To: alice, Amount: 30}}},
	}
	legs := Net(trades)
	want := crosschain.Leg{Chain: "alpha", Asset: "USD", From: alice, To: carol, Amount: 70}
	if len(legs) != 1 || legs[0] != want {
		t.Fatalf("Net = %+v", legs)
	}
	// A batch that cancels out has nothing to settle.
	if legs := Net(append(trades, Trade{Legs: []crosschain.Leg{{Chain: "alpha", Asset: "USD", From: carol, To: alice, Amount: 70}}})); len(legs) != 0 {
		t.Fatalf("Net of a closed cycle = %+v", legs)
	}
}

func TestNetProperties(t *testing.T) {
	parties := []crypto.Address{alice, bob, carol, addr(4), addr(5)}
	chains := []string{"alpha", "beta"}
	assets := []string{"USD", "EUR"}
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 30).Draw(t, "trades")
		var trades []Trade
		for i := 0; i < n; i++ {
			var legs []crosschain.Leg
			for j := rapid.IntRange(1, 3).Draw(t, "legs"); j > 0; j-- {
				from := rapid.SampledFrom(parties).Draw(t, "from")
				to := rapid.SampledFrom(parties).Filter(func(a crypto.Address) bool { return a != from }).Draw(t, "to")
				amt := rapid.OneOf(rapid.Uint64Range(1, 1000), rapid.Uint64Range(1<<63, 1<<64-1)).Draw(t, "amount")
				legs = append(legs, crosschain.Leg{Chain: rapid.SampledFrom(chains).Draw(t, "chain"),
					Asset: rapid.SampledFrom(assets).Draw(t, "asset"), From: from, To: to, Amount: amt})
			}
			trades = append(trades, Trade{Legs: legs})
		}
		var all []crosschain.Leg
		for _, tr := range trades {
			all = append(all, tr.Legs...)
		}
		net := Net(trades)
		before, after := Positions(all), Positions(net)
		for p, v := range before {
			w := after[p]
			if w == nil {
				w = new(big.Int)
			}
			if v.Cmp(w) != 0 {
				t.Fatalf("position of %v: %v before netting, %v after", p, v, w)
			}
		}
		for p, w := range after {
			if before[p] == nil && w.Sign() != 0 {
				t.Fatalf("netting creates a position %v = %v", p, w)
			}
		}
		for _, l := range net {
			if l.Amount == 0 || l.From == l.To {
				t.Fatalf("bad net leg %+v", l)
			}
			// A party only pays in a book where it is a net payer.
			if before[Position{l.Chain, l.Asset, l.From}].Sign() >= 0 {
				t.Fatalf("%+v: the payer is not a net payer", l)
			}
		}
		if len(net) > len(all)+len(all) { // chunks of > 2^64 can add legs; never many
			t.Fatalf("%d net legs for %d legs", len(net), len(all))
		}
		again := Net(trades)
		if len(again) != len(net) {
			t.Fatal("Net is not deterministic")
		}
		for i := range net {
			if net[i] != again[i] {
				t.Fatal("Net is not deterministic")
			}
		}
	})
}

// fakeChain answers state reads from a map.
type fakeChain map[string]any

func (f fakeChain) State(_ context.Context, _ uint64, key string, _ bool) (*client.StateResult, error) {
	v, ok := f[key]
	if !ok {
		return &client.StateResult{Key: key}, nil
	}
	b, err := encoding.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &client.StateResult{Key: key, Found: true, Value: b}, nil
}

func TestQuery(t *testing.T) {
	x, err := DvP(alice, bob, LegSpec{"alpha", "BOND", 10}, LegSpec{"beta", "USD", 1000}).XTx("alpha", deadline)
	if err != nil {
		t.Fatal(err)
	}
	id := x.ID()
	alpha, beta := fakeChain{}, fakeChain{}
	chains := map[string]Reader{"alpha": alpha, "beta": beta}
	check := func(state State, final bool, reason string, legs ...string) {
		t.Helper()
		st, err := Query(context.Background(), &x, chains, false)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != state || st.Final != final || st.Reason != reason || st.ID != id.String() {
			t.Fatalf("status %+v, want %s final=%v reason %q", st, state, final, reason)
		}
		for i, l := range legs {
			if st.Legs[i].Status != l {
				t.Fatalf("leg %d is %s, want %s", i, st.Legs[i].Status, l)
			}
		}
	}
	check(Pending, false, "", "pending", "pending")
	alpha[crosschain.LegKey(id, 0)] = crosschain.LegRecord{Status: crosschain.Prepared, Height: 3}
	check(Pending, false, "", "prepared", "pending")
	beta[crosschain.LegKey(id, 1)] = crosschain.LegRecord{Status: crosschain.Refused, Reason: "insufficient funds", Height: 4}
	check(Pending, false, "leg 1 on beta refused: insufficient funds", "prepared", "refused")
	alpha[crosschain.DecisionKey(id)] = crosschain.Decision{Reason: "leg 1 on beta refused: insufficient funds", Height: 5}
	check(Aborted, false, "leg 1 on beta refused: insufficient funds")
	alpha[crosschain.LegKey(id, 0)] = crosschain.LegRecord{Status: crosschain.Aborted}
	beta[crosschain.LegKey(id, 1)] = crosschain.LegRecord{Status: crosschain.Aborted}
	check(Aborted, true, "leg 1 on beta refused: insufficient funds", "aborted", "aborted")

	alpha[crosschain.DecisionKey(id)] = crosschain.Decision{Commit: true, Height: 5}
	alpha[crosschain.LegKey(id, 0)] = crosschain.LegRecord{Status: crosschain.Committed}
	beta[crosschain.LegKey(id, 1)] = crosschain.LegRecord{Status: crosschain.Prepared}
	check(Committed, false, "", "committed", "prepared")
	beta[crosschain.LegKey(id, 1)] = crosschain.LegRecord{Status: crosschain.Committed}
	check(Committed, true, "", "committed", "committed")

	delete(chains, "beta")
	if _, err := Query(context.Background(), &x, chains, false); !errors.Is(err, ErrNoChain) {
		t.Fatalf("missing chain: %v", err)
	}
}

func TestMatchSigned(t *testing.T) {
	ka, kb := key(t), key(t)
	a, b := ka.Public().Address(), kb.Public().Address()
	d, p := LegSpec{"alpha", "BOND", 10}, LegSpec{"beta", "USD", 1000}
	tr := DvP(a, b, d, p)
	tr.Ref = "T-1"
	ia := Instruction{Party: a, Trade: tr, Deadline: deadline}
	trb := tr
	trb.Legs = []crosschain.Leg{tr.Legs[1], tr.Legs[0]}
	ib := Instruction{Party: b, Trade: trb, Deadline: deadline}
	sa, err := Sign(ia, ka)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := Sign(ib, kb)
	if err != nil {
		t.Fatal(err)
	}
	s, err := MatchSigned(sa, sb)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.VerifySigs(); err != nil {
		t.Fatal(err)
	}
	// A party signing other terms (another deadline, which Match would accept
	// from one side only) does not match.
	ib2 := ib
	ib2.Deadline = time.Time{}
	sb2, err := Sign(Instruction{Party: b, Trade: trb, Deadline: deadline.Add(time.Second)}, kb)
	if err != nil {
		t.Fatal(err)
	}
	sb2.Instruction = ib2
	if _, err := MatchSigned(sa, sb2); !errors.Is(err, crosschain.ErrMissingSignature) {
		t.Fatalf("signature over other terms: %v", err)
	}
	sb.Sig = nil
	if _, err := MatchSigned(sa, sb); !errors.Is(err, crosschain.ErrMissingSignature) {
		t.Fatalf("unsigned: %v", err)
	}
	if _, err := Sign(ia, kb); !errors.Is(err, ErrInvalid) {
		t.Fatalf("wrong key: %v", err)
	}
}
