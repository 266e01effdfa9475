package settlement

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/crosschain"
)

// Finding a trade on the chains by its id. Every chain keeps the terms of
// each XTx that ran a step there at crosschain.XTxKey, so anyone who can
// read the chains — a counterparty, an operator — can look a trade up by id
// without the submitter's records.

// ErrTradeNotFound: none of the chains asked holds the terms of the trade.
var ErrTradeNotFound = errors.New("no chain holds the trade")

// MinIDPrefix is the shortest id prefix accepted where a trade may be named
// by a prefix of its id (the tools print 12 hex digits).
const MinIDPrefix = 8

// ParseIDOrPrefix parses a trade id given in full (64 hex digits: full is
// set) or as a prefix of at least MinIDPrefix hex digits (prefix is set,
// in lower case).
func ParseIDOrPrefix(s string) (full hash.Hash, prefix string, err error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) == 2*hash.Size {
		full, err = ParseID(s)
		return full, "", err
	}
	if len(s) < MinIDPrefix || len(s) > 2*hash.Size || strings.Trim(s, "0123456789abcdef") != "" {
		return hash.Hash{}, "", fmt.Errorf("%w: xtx id %q: want 64 hex digits, or a prefix of at least %d (such as the 12 the tools print)",
			ErrInvalid, s, MinIDPrefix)
	}
	return hash.Hash{}, s, nil
}

// LookupID returns the terms of trade id from the first chain named by order
// (asked in that order, through chains by chain ID) that holds them at
// crosschain.XTxKey, or an error wrapping ErrTradeNotFound. A chain that
// cannot be read is passed over; when no other chain holds the terms, the
// read errors are returned (not ErrTradeNotFound: the trade may be there). The terms must
// hash to id, or LookupID fails: a node cannot substitute another trade.
// With prove, every read (and every absence) is verified against a
// certified header; RefTrade.Verified says the terms were.
//
// The chains keep a trade's terms, not its parties' signatures: a chain
// checked those when its prepare or decide ran (a leg prepared, a decision
// to commit, imply that it verified every party's signature).
func LookupID(ctx context.Context, chains map[string]Reader, order []string, id hash.Hash, prove bool) (*RefTrade, error) {
	var errs []error
	for _, chain := range order {
		out := &RefTrade{ID: id, Chain: chain}
		found, verified, err := readState(ctx, chains, chain, crosschain.XTxKey(id), prove, &out.XTx)
		if err != nil {
			errs = append(errs, err) // another chain may hold the terms
			continue
		}
		if !found {
			continue
		}
		if got := out.XTx.ID(); got != id {
			return nil, fmt.Errorf("chain %s: the terms at %s hash to %s, not to the id", chain, crosschain.XTxKey(id), got.Short())
		}
		out.Verified = verified
		return out, nil
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return nil, fmt.Errorf("%w: trade %s on %v", ErrTradeNotFound, id.Short(), order)
}

// FindRef is LookupRef for a caller that does not know the trade's
// coordinator: it asks every chain of order for party's reference and
// returns the trade named by its own coordinator (where at most one trade per
// party and reference ever commits) or, when no coordinator was asked or
// names one, the first found. Another chain may name another trade under the
// reference (one whose prepare ran there first and aborted); others lists
// the ids of such trades, so a caller can say so. A chain that cannot be
// read, or answers inconsistently, is passed over when another names the
// trade.
func FindRef(ctx context.Context, chains map[string]Reader, order []string, party crypto.Address, ref string, prove bool) (found *RefTrade, others []hash.Hash, err error) {
	var all []*RefTrade
	var errs []error
	for _, chain := range order {
		t, err := LookupRef(ctx, chains, []string{chain}, party, ref, prove)
		switch {
		case errors.Is(err, ErrRefNotFound):
			continue
		case errors.Is(err, ErrInvalid):
			return nil, nil, err
		case err != nil:
			errs = append(errs, err) // the others may still name the trade
			continue
		}
		all = append(all, t)
	}
	if len(all) == 0 && len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	if len(all) == 0 {
		return nil, nil, fmt.Errorf("%w: ref %q of %s on %v", ErrRefNotFound, ref, party, order)
	}
	found = all[0]
	for _, t := range all {
		if t.Chain == t.XTx.Coordinator {
			found = t
			break
		}
	}
	for _, t := range all {
		if t.ID != found.ID && !slices.Contains(others, t.ID) {
			others = append(others, t.ID)
		}
	}
	return found, others, nil
}
