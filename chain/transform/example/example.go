// Package example is the transform of docs/tutorial.md: a price oracle. Members
// of a role allowed to call oracle/publish record the price of a currency pair
// under price/PAIR; a price that moves more than MaxMove from the last one is
// refused, so one fat-fingered publication cannot wreck the settlements that
// read it. Register it in a plug binary with
//
//	builtin.Extend(example.Register, example.AddModels)
//
// (cmd/plug does so when built with -tags example).
package example

import (
	"fmt"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/transform"
)

// Type is the transform's type name in transactions and RBAC roles.
const Type = "oracle/publish"

// MaxMove is how far, in percent, a price may move from the last one.
const MaxMove = 50

// Publish records the price of a currency pair. Its exported fields are its
// arguments; the encoding is generic, there is nothing to marshal by hand.
type Publish struct {
	// Pair is six capital letters, base then quote currency, e.g. EURUSD.
	Pair string `cbor:"1,keyasint" json:"pair"`
	// Price is in ten-thousandths of the quote currency: 10850 is 1.0850.
	Price uint64 `cbor:"2,keyasint" json:"price"`
}

// Price is the value stored at price/PAIR (the "price" model).
type Price struct {
	Price  uint64         `cbor:"price" json:"price"`
	By     crypto.Address `cbor:"by" json:"by"`
	Height uint64         `cbor:"height" json:"height"`
	Time   int64          `cbor:"time" json:"time"`
}

// PriceKey is where the price of pair is kept.
func PriceKey(pair string) string { return "price/" + pair }

// Register adds oracle/publish to r.
func Register(r *transform.Registry) { r.MustRegister(Type, &Publish{}) }

// AddModels adds the "price" model (the values under price/) to ms.
func AddModels(ms *transform.Models) {
	ms.MustAdd(transform.Model{Name: "price", Prefix: "price/", Validate: func(v any) error {
		p, ok := v.(Price)
		if !ok {
			return fmt.Errorf("want an example.Price, got %T", v)
		}
		if p.Price == 0 {
			return fmt.Errorf("price must be positive")
		}
		return nil
	}})
}

// Keys declares the one key Publish reads and writes, from its fields alone: the
// executor runs publications of different pairs in parallel.
func (p *Publish) Keys(*transform.Context) (reads, writes []string) {
	return nil, []string{PriceKey(p.Pair)}
}

// Authorizations: only the signer; RBAC decides who may publish at all.
func (p *Publish) Authorizations(*transform.Context) []crypto.Address { return nil }

// Verify checks the pair and the price, and refuses a move of more than
// MaxMove percent from the last price.
func (p *Publish) Verify(_ *transform.Context, st transform.State) error {
	if !validPair(p.Pair) {
		return fmt.Errorf("%w: pair %q: want six capital letters, e.g. EURUSD", transform.ErrInvalid, p.Pair)
	}
	if p.Price == 0 {
		return fmt.Errorf("%w: price must be positive", transform.ErrInvalid)
	}
	var last Price
	found, err := st.Get(PriceKey(p.Pair), &last)
	if err != nil {
		return err
	}
	if found {
		lo, hi := last.Price*(100-MaxMove)/100, last.Price*(100+MaxMove)/100
		if p.Price < lo || p.Price > hi {
			return fmt.Errorf("%w: %s %d moves more than %d%% from %d (published at height %d)",
				transform.ErrInvalid, p.Pair, p.Price, MaxMove, last.Price, last.Height)
		}
	}
	return nil
}

// Apply stores the price with who published it and when.
func (p *Publish) Apply(ctx *transform.Context, st transform.State) error {
	return st.Set(PriceKey(p.Pair), Price{Price: p.Price, By: ctx.Signers[0], Height: ctx.Height, Time: ctx.Time})
}

func validPair(s string) bool {
	if len(s) != 6 {
		return false
	}
	for _, c := range s {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
