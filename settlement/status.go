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

// State is where a crosschain transaction is in its lifecycle.
type State string

// Lifecycle states. A trade is pending until every leg is prepared (or one is
// refused, which leads to an abort), prepared until the coordinator decides, and
// committed or aborted from the decision on; Status.Final says when every leg has
// also finished.
const (
	Pending   State = "pending"
	Prepared  State = "prepared"
	Committed State = "committed"
	Aborted   State = "aborted"
)

// LegPending is the status of a leg without a record on its chain.
const LegPending = "pending"

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
// the coordinator, through chains (by chain ID). With prove, every read is
// verified against a certified header.
func Query(ctx context.Context, x *crosschain.XTx, chains map[string]Reader, prove bool) (*Status, error) {
	id := x.ID()
	st := &Status{ID: id.String(), Coordinator: x.Coordinator, Deadline: x.Deadline, Ref: x.Ref}
	read := func(chain, key string, dst any) (bool, bool, error) {
		return readState(ctx, chains, chain, key, prove, dst)
	}
	var dec crosschain.Decision
	decided, _, err := read(x.Coordinator, crosschain.DecisionKey(id), &dec)
	if err != nil {
		return nil, err
	}
	for i, l := range x.Legs {
		ls := LegStatus{Leg: i, Chain: l.Chain, Asset: l.Asset, From: l.From, To: l.To, Amount: l.Amount, Status: LegPending}
		var rec crosschain.LegRecord
		found, verified, err := read(l.Chain, crosschain.LegKey(id, i), &rec)
		if err != nil {
			return nil, err
		}
		ls.Verified = verified
		if found {
			ls.Status, ls.Reason, ls.Height = string(rec.Status), rec.Reason, rec.Height
		}
		st.Legs = append(st.Legs, ls)
	}
	summarize(st, decided, &dec)
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

// summarize sets State, Final and Reason from the legs and the decision.
func summarize(st *Status, decided bool, dec *crosschain.Decision) {
	st.Decided = decided
	prepared, finished := true, true
	for _, l := range st.Legs {
		switch crosschain.Status(l.Status) {
		case crosschain.Committed, crosschain.Aborted:
		case crosschain.Prepared:
			finished = false
		case crosschain.Refused:
			finished, prepared = false, false
			if st.Reason == "" {
				st.Reason = fmt.Sprintf("leg %d on %s refused: %s", l.Leg, l.Chain, l.Reason)
			}
		default:
			finished, prepared = false, false
		}
	}
	switch {
	case decided && dec.Commit:
		st.State, st.DecisionHeight = Committed, dec.Height
	case decided:
		st.State, st.DecisionHeight, st.Reason = Aborted, dec.Height, dec.Reason
	case prepared:
		st.State = Prepared
	default:
		st.State = Pending
	}
	st.Final = decided && finished
}

// ParseID parses an XTx ID (64 hex digits).
func ParseID(s string) (hash.Hash, error) {
	h, err := hash.Parse(s)
	if err != nil {
		return hash.Hash{}, fmt.Errorf("%w: xtx id %q: want 64 hex digits", ErrInvalid, s)
	}
	return h, nil
}
