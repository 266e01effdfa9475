package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/tx"
)

// SubmitResult is the outcome of Submit.
type SubmitResult struct {
	ID hash.Hash
	// Result is set once the transaction is committed (with wait); nil while it is
	// pending.
	Result *gateway.TxResult
}

// Submit sends t. With wait, it waits up to timeout (the gateway caps it at 60 s)
// for the commit; if the time runs out the result is still pending (Result nil)
// and the transaction may commit later. A busy node is retried after its
// Retry-After, up to WithBusyRetries times.
func (c *Client) Submit(ctx context.Context, t *tx.Tx, wait bool, timeout time.Duration) (*SubmitResult, error) {
	raw, err := t.Encode()
	if err != nil {
		return nil, err
	}
	id, err := t.ID()
	if err != nil {
		return nil, err
	}
	r := request{method: http.MethodPost, path: "/v1/tx", body: raw, ctype: "application/cbor"}
	if wait {
		if timeout <= 0 {
			timeout = gateway.DefaultWait
		}
		r.path += "?wait=true&timeout=" + url.QueryEscape(timeout.String())
		r.wait = timeout
	}
	resp, err := c.do(ctx, r)
	var api *APIError
	if err != nil && !errors.Is(err, ErrBusy) && errors.As(err, &api) {
		// Sent again (after a failover, or by a retrying caller), the
		// transaction may already be committed: its nonce is then refused.
		if res, rerr := c.TxResult(ctx, id); rerr == nil {
			return &SubmitResult{ID: id, Result: res}, nil
		}
		return nil, dropped(err)
	}
	if err != nil {
		return nil, err
	}
	var out struct {
		ID     hash.Hash `json:"id"`
		Status string    `json:"status"`
		Height uint64    `json:"height"`
		Index  uint32    `json:"index"`
		Code   exec.Code `json:"code"`
		Error  string    `json:"error"`
	}
	if err := decodeJSON(resp, &out); err != nil {
		return nil, err
	}
	if out.ID != id {
		return nil, fmt.Errorf("%s answered for transaction %s, sent %s", resp.endpoint, out.ID, id)
	}
	sr := &SubmitResult{ID: id}
	if out.Status != "pending" {
		sr.Result = &gateway.TxResult{ID: id, Height: out.Height, Index: out.Index, Code: out.Code, Error: out.Error, Tx: t}
	}
	return sr, nil
}

// SubmitBatch sends txs in one request (POST /v1/txs, at most
// gateway.MaxBatchTxs), admitted by the node in order without waiting for
// commits. It returns one error per transaction — nil when admitted or already
// committed, else an *APIError as Submit would return — or an error for the
// whole request.
func (c *Client) SubmitBatch(ctx context.Context, txs []*tx.Tx) ([]error, error) {
	raws := make([][]byte, len(txs))
	for i, t := range txs {
		var err error
		if raws[i], err = t.Encode(); err != nil {
			return nil, fmt.Errorf("transaction %d: %w", i, err)
		}
	}
	body, err := encoding.Marshal(raws)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/txs", body: body, ctype: "application/cbor"})
	if err != nil {
		return nil, err
	}
	var out gateway.BatchResponse
	if err := decodeJSON(resp, &out); err != nil {
		return nil, err
	}
	if len(out.Results) != len(txs) {
		return nil, fmt.Errorf("%s answered %d results for %d transactions", resp.endpoint, len(out.Results), len(txs))
	}
	errs := make([]error, len(txs))
	for i, r := range out.Results {
		if r.Status != "pending" && r.Status != "committed" {
			errs[i] = &APIError{Endpoint: resp.endpoint, Status: http.StatusOK, Code: r.Code, Message: r.Error}
		}
	}
	return errs, nil
}

// TxResult returns a committed transaction's outcome. While the transaction is
// pending it returns a *PendingError, when it was dropped a *DroppedError, and
// when the node does not know it an error matching ErrNotFound (both a
// PendingError and an unknown transaction match ErrNotFound).
func (c *Client) TxResult(ctx context.Context, id hash.Hash) (*gateway.TxResult, error) {
	r, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/tx/" + id.String(), cbor: true})
	if err != nil {
		return nil, dropped(err)
	}
	if r.status == http.StatusAccepted {
		var st gateway.TxStatus
		if err := decodeCBOR(r, &st); err != nil {
			return nil, err
		}
		if st.ID != id {
			return nil, fmt.Errorf("%w: %s answered for transaction %s, asked %s", ErrProof, r.endpoint, st.ID, id)
		}
		return nil, &PendingError{Status: st}
	}
	var res gateway.TxResult
	if err := decodeCBOR(r, &res); err != nil {
		return nil, err
	}
	if res.ID != id {
		return nil, fmt.Errorf("%w: %s answered for transaction %s, asked %s", ErrProof, r.endpoint, res.ID, id)
	}
	if res.Tx != nil {
		if got, err := res.Tx.ID(); err != nil || got != id {
			return nil, fmt.Errorf("%w: %s returned a transaction whose ID is not %s", ErrProof, r.endpoint, id)
		}
	}
	return &res, nil
}

// WaitTx polls until id is committed or timeout passes (then an error matching
// ErrNotFound), or the node says it was dropped (a *DroppedError).
func (c *Client) WaitTx(ctx context.Context, id hash.Hash, timeout time.Duration) (*gateway.TxResult, error) {
	deadline := time.Now().Add(timeout)
	for {
		res, err := c.TxResult(ctx, id)
		if err == nil || !errors.Is(err, ErrNotFound) || time.Now().After(deadline) {
			return res, err
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Await waits up to timeout for t, which the caller submitted, to be committed,
// making sure on the way that it is not silently lost (see Follow). It returns
// the result, a *DroppedError when t was dropped, or a *PendingError (matching
// ErrNotFound) when timeout passes with t still pending. It never signs
// anything: renewing a dropped transaction is the caller's decision (Renew).
func (c *Client) Await(ctx context.Context, t *tx.Tx, timeout time.Duration) (*gateway.TxResult, error) {
	deadline := time.Now().Add(timeout)
	for {
		res, err := c.Follow(ctx, t)
		if !errors.Is(err, ErrPending) || time.Now().After(deadline) {
			return res, err
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Follow asks once what became of t, which the caller submitted: its result
// when committed, a *DroppedError when it was dropped, a *PendingError while it
// is pending. When the node that answers does not know t, Follow tells the two
// cases apart by t's nonces: used means another transaction won (dropped);
// unused means a node lost t (it crashed before passing it on), and Follow
// sends t again — the same signed bytes, which can never commit twice — and
// answers pending.
func (c *Client) Follow(ctx context.Context, t *tx.Tx) (*gateway.TxResult, error) {
	id, err := t.ID()
	if err != nil {
		return nil, err
	}
	res, err := c.TxResult(ctx, id)
	if err == nil || errors.Is(err, ErrPending) || !errors.Is(err, ErrNotFound) {
		return res, err
	}
	if d := c.usedNonce(ctx, t, id); d != nil {
		return nil, d
	}
	_, serr := c.Submit(ctx, t, false, 0)
	switch {
	case serr == nil:
		return nil, &PendingError{Status: gateway.TxStatus{ID: id, Status: gateway.TxPending, Reason: "sent again: the node asked did not know it"}}
	case errors.Is(serr, ErrDropped):
		return nil, dropped(serr)
	case errors.Is(serr, ErrBusy), IsConnError(serr), errors.Is(serr, ErrNonceConflict):
		// Try again later; a conflict means another transaction holds the nonce,
		// and if it commits, the next round reports t dropped.
		return nil, &PendingError{Status: gateway.TxStatus{ID: id, Status: gateway.TxPending, Reason: "not known to the node asked; sending it again failed: " + serr.Error()}}
	}
	if res, rerr := c.TxResult(ctx, id); rerr == nil {
		return res, nil
	}
	return nil, serr
}

// usedNonce returns a *DroppedError when a nonce t carries is below its
// signer's committed nonce (and t itself is not committed), or nil.
func (c *Client) usedNonce(ctx context.Context, t *tx.Tx, id hash.Hash) error {
	for _, s := range t.Body.Signers {
		a := s.Key.Address()
		n, err := c.Nonces(ctx, a)
		if err != nil || n.Committed <= s.Nonce {
			continue
		}
		if _, err := c.TxResult(ctx, id); err == nil {
			return nil // committed between the two reads
		}
		return &DroppedError{Status: gateway.TxStatus{ID: id, Status: gateway.TxDropped, Signer: &a, Nonce: s.Nonce,
			Reason: fmt.Sprintf("nonce %d of signer %s was used by another transaction (its committed nonce is %d)", s.Nonce, a, n.Committed)}}
	}
	return nil
}

// Renew returns t re-signed with fresh nonces: the same chain, transform,
// payload and memo, each signer's next nonce read from the node, and keys' signatures
// (one key per signer, in signer order). It is how a caller retries a dropped
// transaction; the client never does it on its own.
func (c *Client) Renew(ctx context.Context, t *tx.Tx, keys ...crypto.PrivateKey) (*tx.Tx, error) {
	if len(keys) != len(t.Body.Signers) {
		return nil, fmt.Errorf("%w: %d keys for %d signers", ErrInvalid, len(keys), len(t.Body.Signers))
	}
	signers := make([]tx.Signer, len(keys))
	for i, k := range keys {
		n, err := c.Nonce(ctx, k.Public().Address())
		if err != nil {
			return nil, fmt.Errorf("nonce of signer %d: %w", i, err)
		}
		signers[i] = tx.Signer{Key: k.Public(), Nonce: n}
	}
	nt := tx.FromPayload(t.Body.ChainID, t.Body.Type, t.Body.Payload, signers...)
	nt.Body.Memo = t.Body.Memo
	for _, k := range keys {
		if err := nt.Sign(k); err != nil {
			return nil, err
		}
	}
	return nt, nil
}
