package crosschain

import (
	"slices"
	"testing"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/transform"
)

// The steps of an XTx name it, and the assets and parties of its legs on the
// chain they run on (not those of the other chains); a batch names its steps'.
func TestIndexTerms(t *testing.T) {
	a, b, c := crypto.Address{1}, crypto.Address{2}, crypto.Address{3}
	x := XTx{Coordinator: "alpha", Legs: []Leg{
		{Chain: "alpha", Asset: "USD", From: a, To: b, Amount: 5},
		{Chain: "beta", Asset: "BOND", From: b, To: c, Amount: 1},
	}}
	id := x.ID().String()
	ctx := &transform.Context{ChainID: "beta"}
	var steps []transform.Indexed = []transform.Indexed{&Prepare{Tx: Signed{XTx: x}, Leg: 1}, &Decide{XTx: x}, &Finish{XTx: x, Leg: 1}}
	for _, s := range steps {
		got := s.IndexTerms(ctx)
		want := []transform.Term{{Kind: transform.TermXTx, Value: id}, {Kind: transform.TermAsset, Value: "BOND"},
			transform.AccountTerm(b), transform.AccountTerm(c)}
		if !slices.Equal(got, want) {
			t.Errorf("%T: %v, want %v", s, got, want)
		}
	}
	batch := &Batch{Steps: []Step{{Prepare: &Prepare{Tx: Signed{XTx: x}}}, {Finish: &Finish{XTx: x}}}}
	got := batch.IndexTerms(&transform.Context{ChainID: "alpha"})
	if len(got) != 8 || !slices.Contains(got, transform.AccountTerm(a)) || slices.Contains(got, transform.AccountTerm(c)) {
		t.Errorf("batch: %v", got)
	}
}
