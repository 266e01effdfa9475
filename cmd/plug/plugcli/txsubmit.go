package plugcli

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"time"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
)

// How a tx command submits: sign with the next nonce, send (retrying a
// nonce conflict), wait with --wait, and keep the transaction in the outbox
// until its fate is known.

// routed is what a tx command's build returns when it carried the transaction
// out itself over a --network: err is its outcome, nil on success.
type routed struct{ err error }

func (r routed) Error() string { return fmt.Sprint("routed over the network: ", r.err) }

// txOut is a submitted transaction in --output json.
type txOut struct {
	ID      string `json:"id"`
	ChainID string `json:"chain_id"`
	Type    string `json:"type"`
	Signer  string `json:"signer"`
	Nonce   uint64 `json:"nonce"`
	// Status is pending (submitted, not waited for or not committed in time),
	// ok, failed, rejected, or dropped (its nonce was used by another
	// transaction: it will never commit).
	Status string `json:"status"`
	Height uint64 `json:"height,omitempty"`
	Index  uint32 `json:"index,omitempty"`
	Code   *int   `json:"code,omitempty"`
	Error  string `json:"error,omitempty"`
	// Skipped lists the parts of a batch that did not apply, and why.
	Skipped []transform.Skip `json:"skipped,omitempty"`
	Node    string           `json:"node"`
	// Asset, Amount and Display are the amount a transfer, issue, burn, stake
	// or unstake moves: in the smallest unit and in whole units ("12.34 USD").
	Asset   string `json:"asset,omitempty"`
	Amount  uint64 `json:"amount,omitempty"`
	Display string `json:"display,omitempty"`
}

// nonceRetries is how many times a command signs a transaction again with the
// next nonce when a node refuses it for a nonce conflict (another process of
// the same signer took the nonce first); a refused transaction was never
// admitted, so signing another is safe.
const nonceRetries = 5

// submit signs tr as s, submits it to the chain and reports the outcome.
func (e *env) submit(s *signer, tr transform.Transform, memo string) error {
	chainID, err := e.chain()
	if err != nil {
		return err
	}
	pub := s.key.Public()
	ob, err := e.outbox()
	if err != nil {
		return err
	}
	e.reconcile(ob, chainID)
	fixed := e.c.String("nonce") != ""
	var nonce uint64
	if fixed {
		if nonce, err = strconv.ParseUint(e.c.String("nonce"), 10, 64); err != nil {
			return fmt.Errorf("--nonce %q: want a whole number", e.c.String("nonce"))
		}
	}
	wait := e.c.Bool("wait")
	timeout := e.c.Duration("timeout")
	var t *tx.Tx
	var res *client.SubmitResult
	for attempt := 0; ; attempt++ {
		if !fixed {
			if nonce, err = ob.Next(e.ctx(), e.client, chainID, pub.Address()); err != nil {
				return fmt.Errorf("reading the nonce of %s: %w", pub.Address(), err)
			}
		}
		if t, err = tx.New(app.Registry(), chainID, tr, tx.Signer{Key: pub, Nonce: nonce}); err != nil {
			return err
		}
		t.Body.Memo = memo
		if err := t.Sign(s.key); err != nil {
			return err
		}
		// Recorded before it is sent: if this process dies now, the next
		// `plug tx` finds it and sends it (exactly once, by its nonce).
		if err := ob.Put(t); err != nil {
			return err
		}
		err = waitBar(e.out, "waiting for the commit", func() error {
			var err error
			res, err = e.client.Submit(e.ctx(), t, wait, min(timeout, 60*time.Second))
			return err
		})
		var api *client.APIError
		if err != nil && errors.As(err, &api) && !errors.Is(err, client.ErrDropped) {
			ob.Forget(chainID, mustTxID(t)) // refused: never admitted
		}
		if errors.Is(err, client.ErrNonceConflict) && !fixed && attempt < nonceRetries {
			continue
		}
		break
	}
	id := mustTxID(t)
	var dropped *client.DroppedError
	switch {
	case errors.As(err, &dropped):
	case errors.Is(err, client.ErrBusy):
		return fmt.Errorf("%w: the node's mempool is full, try again shortly", err)
	case client.IsConnError(err):
		return fmt.Errorf("%w: the transaction %s may or may not have reached a node; it is kept in the outbox %s, and the next "+
			"`plug tx` of this chain (or `plug tx pending`) sends it again if no node has it", err, id, ob.Dir())
	case err != nil:
		return err
	case wait && res.Result == nil:
		err = waitBar(e.out, "waiting for the commit", func() error {
			r, werr := e.client.Await(e.ctx(), t, max(0, timeout-60*time.Second))
			res.Result = r
			if errors.As(werr, &dropped) || errors.Is(werr, client.ErrNotFound) {
				return nil
			}
			return werr
		})
		if err != nil {
			return err
		}
	}
	if dropped != nil {
		ob.Settle(t, nil, dropped)
	} else if res.Result != nil {
		ob.Settle(t, res.Result, nil)
	}
	out := txOut{ID: id.String(), ChainID: chainID, Type: t.Body.Type, Signer: pub.Address().String(),
		Nonce: nonce, Status: "pending", Node: e.client.Endpoint()}
	if e.shown != nil {
		out.Asset, out.Amount, out.Display = e.shown.Asset, e.shown.Amount, e.shown.Display
	}
	if dropped != nil {
		out.Status, out.Error = gateway.TxDropped, dropped.Status.Reason
	} else if r := res.Result; r != nil {
		code := int(r.Code)
		out.Status, out.Height, out.Index, out.Code, out.Error, out.Skipped = r.Code.String(), r.Height, r.Index, &code, r.Error, r.Skipped
	}
	err = e.out.Emit(out, func(w io.Writer) error {
		pairs := [][2]string{{"id", out.ID}, {"type", out.Type}, {"signer", s.label + " (" + out.Signer + ")"},
			{"nonce", strconv.FormatUint(nonce, 10)}}
		if e.shown != nil {
			pairs = append(pairs, [2]string{"amount", withDisplay(out.Amount, out.Display)})
		}
		pairs = append(pairs, [2]string{"status", out.Status})
		switch {
		case dropped != nil:
			pairs = append(pairs, [2]string{"reason", out.Error})
		case res.Result != nil:
			pairs = append(pairs, [2]string{"height", strconv.FormatUint(out.Height, 10)})
			if out.Error != "" {
				pairs = append(pairs, [2]string{"error", out.Error})
			}
			pairs = append(pairs, skippedPairs(out.Skipped)...)
		case wait:
			pairs = append(pairs, [2]string{"note", "not committed within --timeout; check with `plug query tx " + out.ID + "`"})
		}
		return e.out.Fields(pairs)
	})
	if err != nil {
		return err
	}
	if dropped != nil {
		return reportedError{fmt.Errorf("transaction %s was dropped and will never commit: %s; to try again, sign it anew "+
			"with `plug tx resend %s`", id.Short(), dropped.Status.Reason, id)}
	}
	if r := res.Result; r != nil && r.Code != exec.OK {
		return reportedError{fmt.Errorf("transaction %s %s at height %d: %s", id.Short(), r.Code, r.Height, r.Error)}
	}
	if wait && res.Result == nil {
		return reportedError{fmt.Errorf("transaction %s was accepted but not committed within %s: "+
			"check later with `plug query tx %s`", id.Short(), timeout, id)}
	}
	return nil
}

// skippedPairs lists a batch's skipped steps for the human output.
func skippedPairs(skipped []transform.Skip) [][2]string {
	var out [][2]string
	for _, sk := range skipped {
		out = append(out, [2]string{"skipped", fmt.Sprintf("step %d: %s", sk.Part, sk.Error)})
	}
	return out
}

func mustTxID(t *tx.Tx) hash.Hash {
	id, err := t.ID()
	if err != nil {
		panic(err) // a transaction this process built and signed always encodes
	}
	return id
}

// outbox opens the journal of submitted transactions: DIR/outbox for a
// --testnet (or a --network beside one), else HOME/outbox.
func (e *env) outbox() (*client.Outbox, error) {
	if e.testnetKeys != "" {
		return client.OpenOutbox(filepath.Join(filepath.Dir(e.testnetKeys), "outbox"))
	}
	home, err := homeDir(e.c)
	if err != nil {
		return nil, err
	}
	return client.OpenOutbox(filepath.Join(home, "outbox"))
}

// reconcile follows the outbox's earlier transactions of chainID (sending again
// any a node lost) and warns of those found dropped.
func (e *env) reconcile(ob *client.Outbox, chainID string) []client.Outcome {
	ocs, err := ob.Reconcile(e.ctx(), e.client, chainID)
	if err != nil {
		e.out.Warn("checking earlier transactions in %s: %v", ob.Dir(), err)
	}
	for _, oc := range ocs {
		var d *client.DroppedError
		if errors.As(oc.Err, &d) {
			e.out.Warn("earlier transaction %s was dropped: %s (sign it anew with `plug tx resend %s`)", oc.ID.Short(), d.Status.Reason, oc.ID)
		}
	}
	return ocs
}
