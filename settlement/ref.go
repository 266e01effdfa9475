package settlement

import (
	"context"
	"errors"
	"fmt"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/crosschain"
)

// ErrRefNotFound: none of the chains asked knows a trade of the party under
// the reference.
var ErrRefNotFound = errors.New("no trade under that reference")

// RefTrade is a trade found by a party's reference.
type RefTrade struct {
	ID  hash.Hash      `json:"id"`
	XTx crosschain.XTx `json:"xtx"`
	// Chain is the chain whose reference record named the trade.
	Chain string `json:"chain"`
	// Verified: the reference record and the terms were both proven against a
	// certified header of Chain.
	Verified bool `json:"verified,omitempty"`
}

// LookupRef returns the trade that holds party's reference ref on the chains
// named by order, asked in that order through chains (by chain ID), or an
// error wrapping ErrRefNotFound when none of them has a record of it. Put the
// coordinator first: it is the chain where at most one trade per party and
// reference ever commits, while each other chain knows only the trades that
// ran a step there. With prove, every read (the record, or its absence, and
// the terms) is verified against a certified header.
//
// The terms read must hash to the ID the record names and carry ref and
// party, or LookupRef fails: a node cannot substitute another trade.
func LookupRef(ctx context.Context, chains map[string]Reader, order []string, party crypto.Address, ref string, prove bool) (*RefTrade, error) {
	if ref == "" {
		return nil, fmt.Errorf("%w: empty ref", ErrInvalid)
	}
	if err := crosschain.CheckRef(ref); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	for _, chain := range order {
		var rec crosschain.RefRecord
		key := crosschain.RefKey(party, ref)
		found, recVerified, err := readState(ctx, chains, chain, key, prove, &rec)
		if err != nil {
			return nil, err
		}
		if !found {
			continue
		}
		if rec.Ref != ref {
			return nil, fmt.Errorf("chain %s: %s holds ref %q, not %q", chain, key, rec.Ref, ref)
		}
		out := &RefTrade{ID: rec.ID, Chain: chain}
		found, xtxVerified, err := readState(ctx, chains, chain, crosschain.XTxKey(rec.ID), prove, &out.XTx)
		switch {
		case err != nil:
			return nil, err
		case !found:
			return nil, fmt.Errorf("chain %s: ref %q of %s names trade %s, whose terms it does not hold", chain, ref, party, rec.ID.Short())
		case out.XTx.ID() != rec.ID || out.XTx.Ref != ref || !out.XTx.IsParty(party):
			return nil, fmt.Errorf("chain %s: the terms at %s are not those of trade %s of %s under ref %q", chain, crosschain.XTxKey(rec.ID), rec.ID.Short(), party, ref)
		}
		out.Verified = recVerified && xtxVerified
		return out, nil
	}
	return nil, fmt.Errorf("%w: ref %q of %s on %v", ErrRefNotFound, ref, party, order)
}
