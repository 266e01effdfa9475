package settlement

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/crosschain"
)

// PrepareResult is the outcome of one leg's xchain/prepare transaction.
type PrepareResult struct {
	Leg   int    `json:"leg"`
	Chain string `json:"chain"`
	TxID  string `json:"tx_id"`
	// Error is set when the transaction failed or was not committed in time; the
	// relay may still carry the trade on (a refusal is recorded, not an error).
	Error string `json:"error,omitempty"`
}

// PrepareTimeout is how long `plug settle` waits for each prepare to be committed.
const PrepareTimeout = 30 * time.Second

// nonceRetries is how many times Prepare signs a leg's prepare again when a
// node refuses it for a nonce conflict: the refused one was never admitted.
const nonceRetries = 5

// PrepareOption changes what Prepare submits.
type PrepareOption func(*prepareOpts)

type prepareOpts struct {
	leaveCoordinator bool
	skip             func(leg int) bool
}

// SkipLegs submits no prepare for the legs skip reports: those already with a
// record on their chain, when a trade submitted before is resumed.
func SkipLegs(skip func(leg int) bool) PrepareOption { return func(o *prepareOpts) { o.skip = skip } }

// LeaveCoordinatorLegs leaves the legs on the coordinator (other than In legs)
// to the relay's decide, which prepares and settles them in the transaction
// that decides (crosschain.Decide with the parties' signatures): one chain
// transaction fewer per such leg, but the payer's asset is not locked before
// the decision. It applies only when some leg is on another chain, whose
// prepare is how relays learn of the trade.
func LeaveCoordinatorLegs() PrepareOption { return func(o *prepareOpts) { o.leaveCoordinator = true } }

// Prepare submits xchain/prepare of every leg of s to the leg's chain (through
// chains, by chain ID), each signed by the key keyFor chooses, and then waits up
// to wait for each to be committed (0: not at all; a prepare that is not
// committed in time is reported in its result, and the relays carry it on). Legs
// whose chain refuses the transaction outright end the call with an error that
// says what to do.
func Prepare(ctx context.Context, reg *transform.Registry, s *crosschain.Signed, chains map[string]*client.Client,
	keyFor func(int, crosschain.Leg) (crypto.PrivateKey, error), wait time.Duration, opts ...PrepareOption) ([]PrepareResult, error) {
	var o prepareOpts
	for _, opt := range opts {
		opt(&o)
	}
	elsewhere := slices.ContainsFunc(s.XTx.Legs, func(l crosschain.Leg) bool { return l.Chain != s.XTx.Coordinator })
	type nk struct {
		chain string
		addr  crypto.Address
	}
	nonces := map[nk]uint64{}
	var out []PrepareResult
	var sent []*tx.Tx
	var signers []crypto.PrivateKey
	for i, l := range s.XTx.Legs {
		if o.leaveCoordinator && elsewhere && l.Chain == s.XTx.Coordinator && l.Kind != crosschain.In {
			continue
		}
		if o.skip != nil && o.skip(i) {
			continue
		}
		k, err := keyFor(i, l)
		if err != nil {
			return nil, err
		}
		cl, ok := chains[l.Chain]
		if !ok {
			return nil, fmt.Errorf("%w %q (leg %d)", ErrNoChain, l.Chain, i)
		}
		key := nk{l.Chain, k.Public().Address()}
		var res *client.SubmitResult
		var t *tx.Tx
		for attempt := 0; ; attempt++ {
			n, ok := nonces[key]
			if !ok {
				if n, err = cl.Nonce(ctx, key.addr); err != nil {
					return nil, fmt.Errorf("chain %s: reading the nonce of %s: %w", l.Chain, key.addr, err)
				}
			}
			nonces[key] = n + 1
			if t, err = tx.New(reg, l.Chain, &crosschain.Prepare{Tx: *s, Leg: uint32(i)}, tx.Signer{Key: k.Public(), Nonce: n}); err != nil {
				return nil, fmt.Errorf("prepare leg %d: %w", i, err)
			}
			t.Body.Memo = s.XTx.Memo
			if s.XTx.Ref != "" {
				t.Body.Memo = s.XTx.Ref // the parties find their prepares by their reference
			}
			if err := t.Sign(k); err != nil {
				return nil, fmt.Errorf("prepare leg %d: %w", i, err)
			}
			res, err = cl.Submit(ctx, t, false, 0)
			if errors.Is(err, client.ErrNonceConflict) && attempt < nonceRetries {
				// Another transaction of the same signer (another process) took
				// the nonce first; this one was not admitted: sign it again.
				delete(nonces, key)
				continue
			}
			break
		}
		if err != nil {
			if errors.Is(err, client.ErrBusy) {
				return nil, fmt.Errorf("chain %s: %w: its mempool is full, try again shortly", l.Chain, err)
			}
			return nil, fmt.Errorf("chain %s refused xchain/prepare of leg %d: %w (do its nodes run the crosschain transforms?)", l.Chain, i, err)
		}
		out = append(out, PrepareResult{Leg: i, Chain: l.Chain, TxID: res.ID.String()})
		sent, signers = append(sent, t), append(signers, k)
	}
	for i := range out {
		if wait <= 0 {
			break
		}
		// Await, not a bare wait: a prepare a crashed node lost is sent again.
		cl := chains[out[i].Chain]
		r, err := cl.Await(ctx, sent[i], wait)
		for attempt := 0; errors.Is(err, client.ErrDropped) && attempt < nonceRetries; attempt++ {
			// Another transaction of the signer used its nonce. A prepare is
			// idempotent on chain (a second one of a leg changes nothing), so
			// signing it anew cannot prepare the leg twice.
			var nt *tx.Tx
			if nt, err = cl.Renew(ctx, sent[i], signers[i]); err != nil {
				break
			}
			if _, err = cl.Submit(ctx, nt, false, 0); err != nil && !errors.Is(err, client.ErrNonceConflict) {
				break
			}
			id, _ := nt.ID()
			sent[i], out[i].TxID = nt, id.String()
			r, err = cl.Await(ctx, nt, wait)
		}
		switch {
		case errors.Is(err, client.ErrNotFound):
			out[i].Error = "not committed within " + wait.String() + "; check with `plug query tx " + out[i].TxID + "`"
		case err != nil:
			return nil, fmt.Errorf("chain %s: waiting for xchain/prepare of leg %d: %w", out[i].Chain, out[i].Leg, err)
		case r.Code != exec.OK:
			out[i].Error = failedPrepare(ctx, cl, &s.XTx, out[i].Leg, r)
		}
	}
	return out, nil
}

// failedPrepare is the PrepareResult.Error of leg's prepare that failed with
// receipt r, or "" when its failure changes nothing: on the coordinator, a
// relay's decide carrying the parties' signatures may prepare (and settle) the
// leg first, and the prepare then fails with crosschain.ErrAlreadyPrepared.
// A receipt carries that error as text only, so the chain's state, not the
// text, says whether the leg has a record after the receipt's block.
func failedPrepare(ctx context.Context, chain Reader, x *crosschain.XTx, leg int, r *gateway.TxResult) string {
	msg := r.Code.String() + ": " + r.Error
	if x.Legs[leg].Chain != x.Coordinator {
		return msg
	}
	res, err := chain.State(ctx, r.Height, crosschain.LegKey(x.ID(), leg), false)
	if err != nil {
		return msg + " (whether another transaction prepared the leg is unknown: " + err.Error() + ")"
	}
	if res.Found {
		return "" // prepared (or refused) by another transaction: nothing went wrong
	}
	return msg
}

// WaitFinal reads x's status from its chains until it is final or timeout passes
// (then it returns the last status read, not final), polling every poll.
func WaitFinal(ctx context.Context, x *crosschain.XTx, chains map[string]Reader, timeout, poll time.Duration) (*Status, error) {
	end := time.Now().Add(timeout)
	for {
		st, err := Query(ctx, x, chains, false)
		if err != nil || st.Final || time.Now().After(end) {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(poll):
		}
	}
}
