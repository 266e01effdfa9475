package settlement

import (
	"context"
	"errors"
	"fmt"

	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/crosschain"
)

// State is where a crosschain transaction is in its lifecycle: the
// crosschain engine's one lifecycle type.
type State = crosschain.Status

// Lifecycle states, as the crosschain engine names them. A trade is pending
// until every leg is prepared (or one is refused, which leads to an abort),
// prepared until the coordinator decides, and committed or aborted from the
// decision on; Status.Final says when every leg has also finished.
const (
	Pending   = crosschain.Pending
	Prepared  = crosschain.Prepared
	Committed = crosschain.Committed
	Aborted   = crosschain.Aborted
)

// LegPending is the status of a leg without a record on its chain.
const LegPending = string(crosschain.Pending)

// LegStatus is one leg's state on its chain.
type LegStatus struct {
	Leg    int            `json:"leg"`
	Chain  string         `json:"chain"`
	Asset  string         `json:"asset"`
	From   crypto.Address `json:"from"`
	To     crypto.Address `json:"to"`
	Amount uint64         `json:"amount"`
	// Status is pending, prepared, refused, committed or aborted.
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	// Height is the block that wrote the record (0 while pending).
	Height uint64 `json:"height,omitempty"`
	// Verified: the record (or its absence) was proven against a certified header.
	Verified bool `json:"verified,omitempty"`
}

// Status is an XTx's lifecycle as read from its chains.
type Status struct {
	ID          string `json:"id"`
	State       State  `json:"status"`
	Coordinator string `json:"coordinator"`
	Deadline    int64  `json:"deadline"`
	// Ref is the trade's reference, if it has one.
	Ref string `json:"ref,omitempty"`
	// Decided is whether the coordinator recorded its decision; DecisionHeight
	// is its block.
	Decided        bool   `json:"decided"`
	DecisionHeight uint64 `json:"decision_height,omitempty"`
	// Final: decided and every leg finished (committed or aborted).
	Final bool        `json:"final"`
	Legs  []LegStatus `json:"legs"`
	// Reason says why the trade aborted (or why a leg was refused).
	Reason string `json:"reason,omitempty"`
}

// Reader reads a chain's state; *client.Client is one.
type Reader interface {
	State(ctx context.Context, height uint64, key string, prove bool) (*client.StateResult, error)
}

// ErrNoChain: no reader for a chain the XTx names.
var ErrNoChain = errors.New("no connection to chain")

// Query reads the leg records of x from each leg's chain and the decision from
// the coordinator, through chains (by chain ID), and asks the crosschain
// engine where the XTx stands. With prove, every read is verified against a
// certified header.
func Query(ctx context.Context, x *crosschain.XTx, chains map[string]Reader, prove bool) (*Status, error) {
	id := x.ID()
	o := crosschain.NewObservation(id, crosschain.Signed{XTx: *x})
	st := &Status{ID: id.String(), Coordinator: x.Coordinator, Deadline: x.Deadline, Ref: x.Ref}
	read := func(rq crosschain.ReadRequest) (bool, error) {
		r := chains[rq.Chain]
		if r == nil {
			return false, fmt.Errorf("%w %q: add it to the testnet or pass its node", ErrNoChain, rq.Chain)
		}
		res, err := r.State(ctx, 0, rq.Key, prove)
		if err != nil {
			return false, fmt.Errorf("chain %s: reading %s: %w", rq.Chain, rq.Key, err)
		}
		if err := o.Fill(rq, res.Found, res.Value, res.Height, nil); err != nil {
			return false, fmt.Errorf("chain %s: %w", rq.Chain, err)
		}
		return res.Verified, nil
	}
	if _, err := read(crosschain.ReadRequest{Kind: crosschain.ReadDecision, Leg: -1, Chain: x.Coordinator, Key: crosschain.DecisionKey(id)}); err != nil {
		return nil, err
	}
	for i, l := range x.Legs {
		verified, err := read(crosschain.ReadRequest{Kind: crosschain.ReadRecord, Leg: i, Chain: l.Chain, Key: crosschain.LegKey(id, i)})
		if err != nil {
			return nil, err
		}
		rec := o.Legs[i].Record
		st.Legs = append(st.Legs, LegStatus{Leg: i, Chain: l.Chain, Asset: l.Asset, From: l.From, To: l.To, Amount: l.Amount,
			Status: string(o.LegStatus(i)), Reason: rec.Record.Reason, Height: rec.Record.Height, Verified: verified})
	}
	p := crosschain.PlanOf(o)
	st.State, st.Final, st.Reason = p.Status, p.Final, p.Reason
	if o.Decision.Found {
		st.Decided, st.DecisionHeight = true, o.Decision.Decision.Height
	}
	return st, nil
}

// readState decodes key's latest value on chain into dst, through chains (by
// chain ID); with prove, verified against a certified header. It reports
// whether the key is present and whether the read (of the value, or of its
// absence) was verified.
func readState(ctx context.Context, chains map[string]Reader, chain, key string, prove bool, dst any) (found, verified bool, err error) {
	r := chains[chain]
	if r == nil {
		return false, false, fmt.Errorf("%w %q: add it to the testnet or pass its node", ErrNoChain, chain)
	}
	res, err := r.State(ctx, 0, key, prove)
	if err != nil {
		return false, false, fmt.Errorf("chain %s: reading %s: %w", chain, key, err)
	}
	if !res.Found {
		return false, res.Verified, nil
	}
	if err := encoding.UnmarshalLax(res.Value, dst); err != nil {
		return false, false, fmt.Errorf("chain %s: %s: %w", chain, key, err)
	}
	return true, res.Verified, nil
}

// ParseID parses an XTx ID (64 hex digits).
func ParseID(s string) (hash.Hash, error) {
	h, err := hash.Parse(s)
	if err != nil {
		return hash.Hash{}, fmt.Errorf("%w: xtx id %q: want 64 hex digits", ErrInvalid, s)
	}
	return h, nil
}
