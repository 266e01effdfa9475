package app

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/proof"
	"github.com/plugchain/plug/crosschain"
)

// Routes are the gateway endpoints of a plug chain beyond chain/'s: GET
// /v1/xtx/{id}, a crosschain transaction as this chain records it. The plug
// binary passes them to every node's gateway (gateway.WithRoutes).
func Routes() []gateway.Route {
	return []gateway.Route{{Pattern: "GET /v1/xtx/{id}", Handle: xtxView}}
}

// XTxView answers GET /v1/xtx/{id}: what this chain records of a crosschain
// transaction, every record proven against this chain's state root at Height
// (verify them against a certified header of that height, GET
// /v1/headers/{height}). A chain knows its own legs and, when it coordinates,
// the decision; the other legs are on their chains' nodes (plug xchain status
// reads them all).
type XTxView struct {
	ID        hash.Hash `json:"id"`
	Chain     string    `json:"chain"`
	Height    uint64    `json:"height"`
	StateRoot hash.Hash `json:"state_root"`
	// Terms are the XTx's terms (crosschain.XTxKey); they hash to ID.
	Terms      crosschain.XTx    `json:"terms"`
	TermsProof *proof.StateProof `json:"terms_proof"`
	// Legs are the legs on this chain.
	Legs []XTxLegView `json:"legs"`
	// Decision is set when this chain is the coordinator.
	Decision *XTxDecisionView `json:"decision,omitempty"`
}

// XTxLegView is one leg on this chain and its record (absent until a prepare
// ran here: Found false, proven absent).
type XTxLegView struct {
	Leg    int                   `json:"leg"`
	Asset  string                `json:"asset"`
	From   crypto.Address        `json:"from"`
	To     crypto.Address        `json:"to"`
	Amount uint64                `json:"amount"`
	Found  bool                  `json:"found"`
	Record *crosschain.LegRecord `json:"record,omitempty"`
	Proof  *proof.StateProof     `json:"proof"`
}

// XTxDecisionView is the coordinator's decision, or its proven absence.
type XTxDecisionView struct {
	Found    bool                 `json:"found"`
	Decision *crosschain.Decision `json:"decision,omitempty"`
	Proof    *proof.StateProof    `json:"proof"`
}

func xtxView(_ context.Context, b gateway.Backend, r *http.Request) (any, error) {
	id, err := hash.Parse(r.PathValue("id"))
	if err != nil {
		return nil, fmt.Errorf("%w: id %q: want the XTx's 64 hex digits", gateway.ErrInvalid, r.PathValue("id"))
	}
	var height uint64
	if v := r.URL.Query().Get("height"); v != "" && v != "latest" {
		if height, err = strconv.ParseUint(v, 10, 64); err != nil {
			return nil, fmt.Errorf("%w: height=%q: want a non-negative integer or latest", gateway.ErrInvalid, v)
		}
	}
	terms, err := b.State(height, crosschain.XTxKey(id), true)
	if err != nil {
		return nil, err
	}
	if !terms.Found {
		return nil, fmt.Errorf("%w: chain %s records no step of crosschain transaction %s (at height %d)", gateway.ErrNotFound, b.ChainID(), id.Short(), terms.Height)
	}
	v := &XTxView{ID: id, Chain: b.ChainID(), Height: terms.Height, StateRoot: terms.StateRoot, TermsProof: terms.Proof, Legs: []XTxLegView{}}
	if err := encoding.UnmarshalLax(terms.Value, &v.Terms); err != nil {
		return nil, fmt.Errorf("terms of %s: %w", id.Short(), err)
	}
	if v.Terms.ID() != id {
		return nil, fmt.Errorf("terms at %s hash to %s", crosschain.XTxKey(id), v.Terms.ID().Short())
	}
	var keys []string
	for i, l := range v.Terms.Legs {
		if l.Chain == v.Chain {
			keys = append(keys, crosschain.LegKey(id, i))
			v.Legs = append(v.Legs, XTxLegView{Leg: i, Asset: l.Asset, From: l.From, To: l.To, Amount: l.Amount})
		}
	}
	coordinator := v.Terms.Coordinator == v.Chain
	if coordinator {
		keys = append(keys, crosschain.DecisionKey(id))
	}
	if len(keys) == 0 {
		return v, nil
	}
	// The records at the height the terms were read at: one state, one root.
	res, err := b.States(v.Height, keys, true)
	if err != nil {
		return nil, err
	}
	for i := range v.Legs {
		l, r := &v.Legs[i], res[i]
		l.Found, l.Proof = r.Found, r.Proof
		if r.Found {
			l.Record = new(crosschain.LegRecord)
			if err := encoding.UnmarshalLax(r.Value, l.Record); err != nil {
				return nil, fmt.Errorf("leg %d of %s: %w", l.Leg, id.Short(), err)
			}
		}
	}
	if coordinator {
		r := res[len(res)-1]
		v.Decision = &XTxDecisionView{Found: r.Found, Proof: r.Proof}
		if r.Found {
			v.Decision.Decision = new(crosschain.Decision)
			if err := encoding.UnmarshalLax(r.Value, v.Decision.Decision); err != nil {
				return nil, fmt.Errorf("decision of %s: %w", id.Short(), err)
			}
		}
	}
	return v, nil
}
