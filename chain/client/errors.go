package client

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/plugchain/plug/chain/gateway"
)

// Errors; test with errors.Is. Errors answered by a node are *APIError values
// that match one of these.
var (
	// ErrNotFound: no such transaction (or still pending), block, header or height.
	ErrNotFound = errors.New("not found")
	// ErrBusy: every node asked was busy (mempool full, shutting down, its
	// gateway's limits: 503 busy or overloaded, 429 rate_limited) through
	// every retry; retry later. The error is a *BusyError carrying the node's
	// Retry-After.
	ErrBusy = errors.New("node busy")
	// ErrInvalid: the node refused the request as malformed (bad transaction,
	// wrong chain, bad nonce); retrying it unchanged will not help.
	ErrInvalid = errors.New("invalid request")
	// ErrProof: a node answered with a proof, header or certificate that does not
	// verify. The answer was discarded; the node is faulty or was tampered with.
	ErrProof = errors.New("proof does not verify")
	// ErrUnavailable: no endpoint could be reached.
	ErrUnavailable = errors.New("no node reachable")
	// ErrWrongChain: a node serves another chain than the client's (WithChainID).
	// Its answer was discarded.
	ErrWrongChain = errors.New("node serves another chain")
	// ErrPending: the transaction is pending in the node's mempool. It matches
	// ErrNotFound too (not committed yet); the error is a *PendingError.
	ErrPending = errors.New("transaction pending")
	// ErrDropped: the transaction left the mempool without being committed and
	// never will be; the error is a *DroppedError saying why.
	ErrDropped = errors.New("transaction dropped")
	// ErrUnknownAsset: the chain has no such asset.
	ErrUnknownAsset = errors.New("unknown asset")
	// ErrNonceConflict: the node refused the transaction because a nonce it
	// carries is used or held by another transaction. It was not admitted;
	// signing it again with the next nonce (Renew) is safe.
	ErrNonceConflict = errors.New("nonce conflict")
	// ErrNonceGap: the node refused the transaction because its nonce is too
	// far ahead of the signer's committed one: earlier transactions were lost.
	ErrNonceGap = errors.New("nonce too far ahead")
)

// PendingError is TxResult's answer for a transaction pending in the node's
// mempool.
type PendingError struct {
	Status gateway.TxStatus
}

func (e *PendingError) Error() string {
	if e.Status.Reason != "" {
		return fmt.Sprintf("transaction %s is pending: %s", e.Status.ID, e.Status.Reason)
	}
	return fmt.Sprintf("transaction %s is pending", e.Status.ID)
}

// Is makes errors.Is(err, ErrPending) and errors.Is(err, ErrNotFound) true.
func (e *PendingError) Is(target error) bool { return target == ErrPending || target == ErrNotFound }

// DroppedError says why a transaction was dropped: Status.Reason, and for a
// nonce used by another transaction, Status.Signer, Nonce, By and Height.
type DroppedError struct {
	Status gateway.TxStatus
}

func (e *DroppedError) Error() string {
	return fmt.Sprintf("transaction %s was dropped: %s", e.Status.ID, e.Status.Reason)
}

// Is makes errors.Is(err, ErrDropped) true.
func (e *DroppedError) Is(target error) bool { return target == ErrDropped }

// APIError is an error answer of a node.
type APIError struct {
	Endpoint string
	Status   int
	// Code is the gateway's error code: invalid, not_found, busy, dropped, ...
	Code    string
	Message string
	// RetryAfter is the node's Retry-After for busy answers.
	RetryAfter time.Duration
	// Tx is the dropped transaction's status, in a dropped answer.
	Tx *gateway.TxStatus
}

func (e *APIError) Error() string { return e.Message }

// Unwrap maps the gateway's codes to this package's sentinel errors.
func (e *APIError) Unwrap() error {
	switch e.Code {
	case gateway.CodeNotFound:
		return ErrNotFound
	case gateway.CodeBusy, gateway.CodeOverloaded, gateway.CodeRateLimited:
		return ErrBusy
	case gateway.CodeInvalid, gateway.CodeTooLarge:
		return ErrInvalid
	case gateway.CodeDropped:
		return ErrDropped
	case gateway.CodeConflict:
		return ErrNonceConflict
	case gateway.CodeNonceGap:
		return ErrNonceGap
	}
	// A proxy's or load balancer's own 429 or 503.
	if e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable {
		return ErrBusy
	}
	return nil
}

// BusyError is returned when nodes stayed busy through every retry.
type BusyError struct {
	// RetryAfter is how long the last node asked to wait.
	RetryAfter time.Duration
	Last       error
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("node busy (%v): retry in %s", e.Last, e.RetryAfter)
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// Unwrap returns the last node's answer.
func (e *BusyError) Unwrap() error { return e.Last }

// dropped turns a node's dropped answer into a *DroppedError.
func dropped(err error) error {
	var api *APIError
	if errors.As(err, &api) && api.Code == gateway.CodeDropped && api.Tx != nil {
		return &DroppedError{Status: *api.Tx}
	}
	return err
}

// unknownAsset is Asset's error for an asset the chain does not define.
type unknownAsset struct{ name, chain string }

func (e *unknownAsset) Error() string {
	return fmt.Sprintf("unknown asset %q on chain %s", e.name, e.chain)
}

func (e *unknownAsset) Is(target error) bool {
	return target == ErrUnknownAsset || target == ErrNotFound
}
