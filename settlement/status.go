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
	// Proof names the read the status comes from (chain, height, state root).
	Proof *ProofRef `json:"proof,omitempty"`
}

// ProofRef names the state a record (or its absence) was read from: the
// chain, the block height and that block's state root. With Verified, the
// read was proven against the certified header of that height, so anyone can
// check it again with the same chain, key and height (`plug query state KEY
// --height H --prove`).
type ProofRef struct {
	Chain     string `json:"chain"`
	Key       string `json:"key"`
	Height    uint64 `json:"height"`
	StateRoot string `json:"state_root"`
	Verified  bool   `json:"verified"`
}

// Status is an XTx's lifecycle as read from its chains.
type Status struct {
	ID          string `json:"id"`
	State       State  `json:"status"`
	Coordinator string `json:"coordinator"`
	Deadline    int64  `json:"deadline"`
	// DeadlineTime is Deadline in RFC 3339 (UTC), for people.
	DeadlineTime string `json:"deadline_time"`
	// Ref is the trade's reference, if it has one.
	Ref string `json:"ref,omitempty"`
	// Decided is whether the coordinator recorded its decision; DecisionHeight
	// is its block.
	Decided        bool   `json:"decided"`
	DecisionHeight uint64 `json:"decision_height,omitempty"`
	// DecidedAt is the deciding block's time (Unix ms), DecidedAtTime the same
	// in RFC 3339 (UTC).
	DecidedAt     int64  `json:"decided_at,omitempty"`
	DecidedAtTime string `json:"decided_at_time,omitempty"`
	// DecisionProof names the coordinator read of the decision (or of its
	// absence).
	DecisionProof *ProofRef `json:"decision_proof,omitempty"`
	// Final: decided and every leg finished (committed or aborted).
	Final bool        `json:"final"`
	Legs  []LegStatus `json:"legs"`
	// Reason says why the trade aborted (or why a leg was refused), with
	// times in RFC 3339 (crosschain.HumanReason); the chains' own records keep
	// Unix milliseconds.
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
	st := &Status{ID: id.String(), Coordinator: x.Coordinator, Deadline: x.Deadline, DeadlineTime: crosschain.FormatMillis(x.Deadline), Ref: x.Ref}
	read := func(rq crosschain.ReadRequest) (*ProofRef, error) {
		r := chains[rq.Chain]
		if r == nil {
			return nil, fmt.Errorf("%w %q: add it to the testnet or pass its node", ErrNoChain, rq.Chain)
		}
		res, err := r.State(ctx, 0, rq.Key, prove)
		if err != nil {
			return nil, fmt.Errorf("chain %s: reading %s: %w", rq.Chain, rq.Key, err)
		}
		if err := o.Fill(rq, res.Found, res.Value, res.Height, nil); err != nil {
			return nil, fmt.Errorf("chain %s: %w", rq.Chain, err)
		}
		return &ProofRef{Chain: rq.Chain, Key: rq.Key, Height: res.Height, StateRoot: res.StateRoot.String(), Verified: res.Verified}, nil
	}
	dp, err := read(crosschain.ReadRequest{Kind: crosschain.ReadDecision, Leg: -1, Chain: x.Coordinator, Key: crosschain.DecisionKey(id)})
	if err != nil {
		return nil, err
	}
	st.DecisionProof = dp
	for i, l := range x.Legs {
		lp, err := read(crosschain.ReadRequest{Kind: crosschain.ReadRecord, Leg: i, Chain: l.Chain, Key: crosschain.LegKey(id, i)})
		if err != nil {
			return nil, err
		}
		rec := o.Legs[i].Record
		st.Legs = append(st.Legs, LegStatus{Leg: i, Chain: l.Chain, Asset: l.Asset, From: l.From, To: l.To, Amount: l.Amount,
			Status: string(o.LegStatus(i)), Reason: crosschain.HumanReason(rec.Record.Reason), Height: rec.Record.Height, Verified: lp.Verified, Proof: lp})
	}
	p := crosschain.PlanOf(o)
	st.State, st.Final, st.Reason = p.Status, p.Final, crosschain.HumanReason(p.Reason)
	if o.Decision.Found {
		d := o.Decision.Decision
		st.Decided, st.DecisionHeight = true, d.Height
		if d.Time > 0 {
			st.DecidedAt, st.DecidedAtTime = d.Time, crosschain.FormatMillis(d.Time)
		}
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
