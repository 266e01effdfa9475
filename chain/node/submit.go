package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/mempool"
	"github.com/plugchain/plug/chain/tx"
)

// Submit adds a transaction to this node's mempool and gossips it.
func (n *Node) Submit(ctx context.Context, t *tx.Tx) (hash.Hash, error) {
	ids, errs := n.SubmitBatch(ctx, []*tx.Tx{t})
	return ids[0], errs[0]
}

// SubmitBatch admits txs in order, as Submit would one by one, with their
// signatures checked in one batch: a client sending many transactions at once
// (POST /v1/txs) costs this node a batched verification rather than one
// single-signature check per transaction. It returns an ID and an error (nil
// when admitted or already pending; wrapping gateway.ErrCommitted when already
// committed) per transaction.
func (n *Node) SubmitBatch(ctx context.Context, txs []*tx.Tx) ([]hash.Hash, []error) {
	ids, errs := make([]hash.Hash, len(txs)), make([]error, len(txs))
	var check []*tx.Tx
	var at []int
	for i, t := range txs {
		t, err := tx.Decoded(t)
		if err != nil {
			errs[i] = fmt.Errorf("%w: %w", gateway.ErrInvalid, err)
			continue
		}
		id, err := t.ID()
		ids[i] = id
		switch {
		case t.Body.ChainID != n.cfg.ChainID:
			errs[i] = fmt.Errorf("%w: %w: transaction for chain %q, this is %q", gateway.ErrInvalid, tx.ErrWrongChain, t.Body.ChainID, n.cfg.ChainID)
		case err == nil && n.pool.Has(id):
			// already pending: submitting twice is harmless
		default:
			// What the executor would reject for its shape is refused now, not
			// answered "pending" and dropped later.
			if err := n.exec.Admit(n.cfg.ChainID, t); err != nil {
				errs[i] = fmt.Errorf("%w: %w", gateway.ErrInvalid, err)
				continue
			}
			check, at = append(check, t), append(at, i)
		}
	}
	for j, sig := range tx.VerifyProofs(check) {
		i, t := at[j], check[j]
		id, err := n.pool.Add(t, sig, n.nonces())
		ids[i] = id
		switch {
		case errors.Is(err, mempool.ErrFull):
			errs[i] = fmt.Errorf("%w: %w", ErrBusy, err)
			continue
		case errors.Is(err, mempool.ErrDuplicate) && n.pool.Has(id):
			continue
		case errors.Is(err, mempool.ErrDuplicate):
			errs[i] = fmt.Errorf("%w: %w", gateway.ErrNonceConflict, err)
			continue
		case errors.Is(err, mempool.ErrStaleNonce):
			errs[i] = n.staleReason(id, err)
			continue
		case errors.Is(err, mempool.ErrNonceGap):
			errs[i] = fmt.Errorf("%w: %w", gateway.ErrNonceGap, err)
			continue
		case err != nil:
			// Everything else the mempool or the checks refuse is the client's to fix.
			errs[i] = fmt.Errorf("%w: %w", gateway.ErrInvalid, err)
			continue
		}
		raw, err := t.Encode()
		if err != nil {
			errs[i] = err
			continue
		}
		select {
		case n.outTxs <- raw:
		case <-ctx.Done():
			errs[i] = ctx.Err()
		}
	}
	return ids, errs
}

// staleReason turns the mempool's refusal of a stale nonce into what the
// client needs to know: the same transaction is already committed (resubmitting
// it is harmless), it was dropped and why, or its nonce was used by another
// (a conflict: it was never admitted, and may be signed again).
func (n *Node) staleReason(id hash.Hash, err error) error {
	if h, _, lerr := n.store.TxLocation(id); lerr == nil && h <= n.height() {
		return fmt.Errorf("%w: transaction %s at height %d", gateway.ErrCommitted, id, h)
	}
	if st, d := n.pool.Lookup(id); st == mempool.Dropped {
		return fmt.Errorf("%w: transaction %s: %s", gateway.ErrDropped, id, d)
	}
	return fmt.Errorf("%w: %w", gateway.ErrNonceConflict, err)
}
