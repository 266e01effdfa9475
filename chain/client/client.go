// Package client is a Go client of a PLUG node's HTTP gateway (docs/gateway.md).
//
// A Client is given one or more endpoints of the same chain; it sends each request
// to the endpoint that answered last and fails over to the next one when a node
// cannot be reached (connection refused, reset, timeout) or says it is busy.
// Reads that ask for a proof are verified before they are returned: the Merkle
// proof against the returned state root, that root against the header of that
// height, and the header against its commit certificate (and the certificate's
// votes against a validator set, when one is trusted with WithValidators).
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/proof"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/chain/valset"
)

// Errors; test with errors.Is. Errors answered by a node are *APIError values
// that match one of these.
var (
	// ErrNotFound: no such transaction (or still pending), block, header or height.
	ErrNotFound = errors.New("not found")
	// ErrBusy: every node asked was busy (mempool full, shutting down); retry
	// later. The error is a *BusyError carrying the node's Retry-After.
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
	case gateway.CodeBusy:
		return ErrBusy
	case gateway.CodeInvalid, gateway.CodeTooLarge:
		return ErrInvalid
	case gateway.CodeDropped:
		return ErrDropped
	case gateway.CodeConflict:
		return ErrNonceConflict
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

// Client talks to the gateways of one chain. It is safe for concurrent use.
type Client struct {
	endpoints []string
	http      *http.Client
	timeout   time.Duration
	retries   int
	chainID   string
	trusted   valset.Set

	mu      sync.Mutex
	current int // index of the endpoint that answered last
	// chainOK holds the endpoints whose chain was checked through /v1/status
	// because their answers did not name it.
	chainOK map[string]bool
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (TLS settings, proxies). Default: a client
// without a global timeout (each request has its own, see WithTimeout).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithTimeout bounds each request that does not wait for a commit. Default 10 s.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithBusyRetries sets how many times a busy answer is retried (after the node's
// Retry-After) before Submit gives up with a *BusyError. Default 3.
func WithBusyRetries(n int) Option { return func(c *Client) { c.retries = n } }

// WithChainID makes the client refuse headers, certificates and proofs of any
// other chain, and every answer of a node that serves another chain
// (ErrWrongChain).
func WithChainID(id string) Option { return func(c *Client) { c.chainID = id } }

// WithValidators trusts set: certificates are checked to carry a quorum of its
// voting power. Without it, a certificate is checked for shape only (it names the
// header's hash, height and chain).
func WithValidators(set valset.Set) Option { return func(c *Client) { c.trusted = set } }

// New returns a client of the gateways at endpoints (base URLs such as
// http://127.0.0.1:26657; "host:port" means http://host:port), tried in order.
func New(endpoints []string, opts ...Option) (*Client, error) {
	c := &Client{http: &http.Client{}, timeout: 10 * time.Second, retries: 3}
	for _, e := range endpoints {
		u, err := NormalizeEndpoint(e)
		if err != nil {
			return nil, err
		}
		c.endpoints = append(c.endpoints, u)
	}
	if len(c.endpoints) == 0 {
		return nil, errors.New("client: no node endpoint given")
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// NormalizeEndpoint turns "host:port" into "http://host:port" and checks the URL.
func NormalizeEndpoint(e string) (string, error) {
	e = strings.TrimSpace(e)
	if !strings.Contains(e, "://") {
		e = "http://" + e
	}
	u, err := url.Parse(e)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("bad node endpoint %q: want http://HOST:PORT or https://HOST:PORT", e)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// Endpoints returns the endpoints, in the order given.
func (c *Client) Endpoints() []string { return append([]string(nil), c.endpoints...) }

// Endpoint returns the endpoint that answered last (the first one before any
// request).
func (c *Client) Endpoint() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endpoints[c.current]
}

// request is one HTTP request, replayable on several endpoints.
type request struct {
	method string
	path   string // with query
	body   []byte
	ctype  string
	cbor   bool // ask for a CBOR answer
	// wait lifts the per-request timeout (the gateway bounds the wait).
	wait time.Duration
}

// response is a successful answer.
type response struct {
	endpoint string
	status   int
	body     []byte
	chain    string // the chain the node names (gateway.ChainIDHeader)
}

// do sends r to the endpoints in turn, starting with the current one, and
// returns the first answer that is not a connection failure or a busy answer.
func (c *Client) do(ctx context.Context, r request) (*response, error) {
	c.mu.Lock()
	start := c.current
	c.mu.Unlock()
	var errs []error
	var busy *APIError
	for i := range c.endpoints {
		idx := (start + i) % len(c.endpoints)
		ep := c.endpoints[idx]
		resp, err := c.once(ctx, ep, r)
		if err == nil {
			c.mu.Lock()
			c.current = idx
			c.mu.Unlock()
			return resp, nil
		}
		if errors.Is(err, ErrWrongChain) {
			return nil, err
		}
		var api *APIError
		if errors.As(err, &api) {
			if api.Code == gateway.CodeBusy {
				busy = api
				errs = append(errs, fmt.Errorf("%s: %w", ep, err))
				continue
			}
			c.mu.Lock()
			c.current = idx
			c.mu.Unlock()
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, fmt.Errorf("%s: %v", ep, err))
	}
	if busy != nil {
		return nil, busy
	}
	return nil, fmt.Errorf("%w: %v: check that a node is running and the address is right", ErrUnavailable, errors.Join(errs...))
}

func (c *Client) once(ctx context.Context, ep string, r request) (*response, error) {
	timeout := c.timeout
	if r.wait > 0 {
		timeout = r.wait + c.timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, ep+r.path, body)
	if err != nil {
		return nil, err
	}
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	if r.cbor {
		req.Header.Set("Accept", "application/cbor")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if err := c.checkChain(ctx, ep, res.Header.Get(gateway.ChainIDHeader)); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if res.StatusCode >= 400 {
		api := &APIError{Endpoint: ep, Status: res.StatusCode}
		var eb gateway.ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Code != "" {
			api.Code, api.Message, api.Tx = eb.Code, eb.Error, eb.Tx
		} else {
			api.Code, api.Message = strconv.Itoa(res.StatusCode), fmt.Sprintf("%s answered %s", ep, res.Status)
		}
		if s := res.Header.Get("Retry-After"); s != "" {
			if n, err := strconv.Atoi(s); err == nil {
				api.RetryAfter = time.Duration(n) * time.Second
			}
		}
		if res.StatusCode >= 500 && api.Code != gateway.CodeBusy {
			api.Message = fmt.Sprintf("%s: %s", ep, api.Message)
		}
		return nil, api
	}
	return &response{endpoint: ep, status: res.StatusCode, body: data, chain: res.Header.Get(gateway.ChainIDHeader)}, nil
}

// checkChain refuses the answer of endpoint ep when the chain it names (in
// gateway.ChainIDHeader) is not the client's. An answer that names none is
// checked once per endpoint against its /v1/status.
func (c *Client) checkChain(ctx context.Context, ep, named string) error {
	if c.chainID == "" {
		return nil
	}
	if named == "" {
		c.mu.Lock()
		ok := c.chainOK[ep]
		c.mu.Unlock()
		if ok {
			return nil
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep+"/v1/status", nil)
		if err != nil {
			return err
		}
		res, err := c.http.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		var st gateway.Status
		if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&st); err != nil || st.ChainID == "" {
			return fmt.Errorf("%w: %s does not say which chain it serves (is it a PLUG node?)", ErrWrongChain, ep)
		}
		named = st.ChainID
		if named == c.chainID {
			c.mu.Lock()
			if c.chainOK == nil {
				c.chainOK = map[string]bool{}
			}
			c.chainOK[ep] = true
			c.mu.Unlock()
		}
	}
	if named != c.chainID {
		return fmt.Errorf("%w: %s serves chain %q, not %q: check the node address and the chain", ErrWrongChain, ep, named, c.chainID)
	}
	return nil
}

func decodeJSON(r *response, v any) error {
	if err := json.Unmarshal(r.body, v); err != nil {
		return fmt.Errorf("%s answered malformed JSON: %w", r.endpoint, err)
	}
	return nil
}

func decodeCBOR(r *response, v any) error {
	// Lax: a response is neither signed nor hashed as received. What the
	// client checks — headers, certificates, proofs — it hashes from its own
	// canonical re-encoding or from byte fields, so a non-canonical answer can
	// deceive nothing, and the strict decoder re-encoded every block and
	// proof batch a relay reads.
	if err := encoding.UnmarshalLax(r.body, v); err != nil {
		return fmt.Errorf("%s answered malformed CBOR: %w", r.endpoint, err)
	}
	return nil
}

// Status returns the status of the node that answers.
func (c *Client) Status(ctx context.Context) (*gateway.Status, error) {
	r, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/status"})
	if err != nil {
		return nil, err
	}
	var st gateway.Status
	if err := decodeJSON(r, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

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
	var resp *response
	for attempt := 0; ; attempt++ {
		resp, err = c.do(ctx, r)
		var api *APIError
		if err == nil || !errors.As(err, &api) {
			break
		}
		if api.Code != gateway.CodeBusy {
			// Sent again (after a failover, or by a retrying caller), the
			// transaction may already be committed: its nonce is then refused.
			if res, rerr := c.TxResult(ctx, id); rerr == nil {
				return &SubmitResult{ID: id, Result: res}, nil
			}
			return nil, dropped(err)
		}
		if attempt >= c.retries {
			return nil, &BusyError{RetryAfter: max(api.RetryAfter, time.Second), Last: err}
		}
		select {
		case <-time.After(max(api.RetryAfter, 200*time.Millisecond)):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
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

// dropped turns a node's dropped answer into a *DroppedError.
func dropped(err error) error {
	var api *APIError
	if errors.As(err, &api) && api.Code == gateway.CodeDropped && api.Tx != nil {
		return &DroppedError{Status: *api.Tx}
	}
	return err
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

// Header returns the header at height (0: the latest) with its certificate,
// checked: the hash is the header's, and the certificate certifies it.
func (c *Client) Header(ctx context.Context, height uint64) (*gateway.HeaderResponse, error) {
	p := "/v1/headers/latest"
	if height > 0 {
		p = "/v1/headers/" + strconv.FormatUint(height, 10)
	}
	r, err := c.do(ctx, request{method: http.MethodGet, path: p, cbor: true})
	if err != nil {
		return nil, err
	}
	var hr gateway.HeaderResponse
	if err := decodeCBOR(r, &hr); err != nil {
		return nil, err
	}
	if hr.Header == nil {
		return nil, fmt.Errorf("%w: %s answered no header", ErrProof, r.endpoint)
	}
	if height > 0 && hr.Header.Height != height {
		return nil, fmt.Errorf("%w: %s answered header %d for height %d", ErrProof, r.endpoint, hr.Header.Height, height)
	}
	if hr.Hash != hr.Header.Hash() {
		return nil, fmt.Errorf("%w: header %d: the hash given is not the header's", ErrProof, hr.Header.Height)
	}
	if err := c.checkCert(hr.Header, hr.Certificate); err != nil {
		return nil, err
	}
	return &hr, nil
}

// checkCert checks that cert certifies hdr (and, with a trusted set, that it
// carries a quorum of it).
func (c *Client) checkCert(hdr *block.Header, cert *consensus.Certificate) error {
	if c.chainID != "" && hdr.ChainID != c.chainID {
		return fmt.Errorf("%w: header of chain %q, want %q", ErrProof, hdr.ChainID, c.chainID)
	}
	if cert == nil {
		return fmt.Errorf("%w: header %d has no commit certificate", ErrProof, hdr.Height)
	}
	if cert.BlockID != hdr.Hash() || cert.Height != hdr.Height || cert.ChainID != hdr.ChainID {
		return fmt.Errorf("%w: the certificate of height %d does not certify this header", ErrProof, hdr.Height)
	}
	if len(cert.Votes) == 0 {
		return fmt.Errorf("%w: the certificate of height %d has no votes", ErrProof, hdr.Height)
	}
	if c.trusted != nil {
		if err := cert.Verify(hdr.ChainID, c.trusted); err != nil {
			return fmt.Errorf("%w: certificate of height %d: %v", ErrProof, hdr.Height, err)
		}
	}
	return nil
}

// Block returns the block at height (>= 1) with its certificate, checked: the
// hash is the header's, the transactions match the header's tx root and the
// listed IDs, and the certificate certifies the header.
func (c *Client) Block(ctx context.Context, height uint64) (*gateway.BlockResponse, error) {
	if height == 0 {
		return nil, fmt.Errorf("%w: heights start at 1", ErrInvalid)
	}
	r, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/blocks/" + strconv.FormatUint(height, 10), cbor: true})
	if err != nil {
		return nil, err
	}
	var br gateway.BlockResponse
	if err := decodeCBOR(r, &br); err != nil {
		return nil, err
	}
	if br.Block == nil || br.Block.Header.Height != height {
		return nil, fmt.Errorf("%w: %s answered no block or another height for %d", ErrProof, r.endpoint, height)
	}
	hdr := &br.Block.Header
	if br.Hash != hdr.Hash() {
		return nil, fmt.Errorf("%w: block %d: the hash given is not the header's", ErrProof, height)
	}
	root, err := block.TxRoot(br.Block.Txs)
	if err != nil || root != hdr.TxRoot {
		return nil, fmt.Errorf("%w: block %d: the transactions do not match the header's tx root", ErrProof, height)
	}
	if len(br.TxIDs) != len(br.Block.Txs) {
		return nil, fmt.Errorf("%w: block %d lists %d IDs for %d transactions", ErrProof, height, len(br.TxIDs), len(br.Block.Txs))
	}
	for i, t := range br.Block.Txs {
		if id, err := t.ID(); err != nil || id != br.TxIDs[i] {
			return nil, fmt.Errorf("%w: block %d: transaction %d has another ID than listed", ErrProof, height, i)
		}
	}
	if err := c.checkCert(hdr, br.Certificate); err != nil {
		return nil, err
	}
	return &br, nil
}

// StateResult is a state read. When proven, Verified says that the proof, the
// state root, the header and the certificate were all checked.
type StateResult struct {
	Key       string
	Height    uint64
	StateRoot hash.Hash
	Found     bool
	// Value is the stored canonical CBOR; nil when not found.
	Value       []byte
	Proof       *proof.StateProof
	Header      *block.Header
	Certificate *consensus.Certificate
	Verified    bool
}

// Decode decodes the value into dst; it leaves dst alone when not found.
func (s *StateResult) Decode(dst any) error {
	if !s.Found {
		return nil
	}
	return encoding.UnmarshalLax(s.Value, dst)
}

// State reads key after the block at height (0: the latest). With prove, the
// answer is verified (see StateResult.Verified) or rejected with ErrProof.
func (c *Client) State(ctx context.Context, height uint64, key string, prove bool) (*StateResult, error) {
	if key == "" {
		return nil, fmt.Errorf("%w: empty state key", ErrInvalid)
	}
	q := url.Values{}
	if height > 0 {
		q.Set("height", strconv.FormatUint(height, 10))
	}
	if prove {
		q.Set("prove", "true")
	}
	p := "/v1/state/" + escapeKey(key)
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	r, err := c.do(ctx, request{method: http.MethodGet, path: p, cbor: true})
	if err != nil {
		return nil, err
	}
	var sc gateway.StateCBOR
	if err := decodeCBOR(r, &sc); err != nil {
		return nil, err
	}
	res := &StateResult{Key: sc.Key, Height: sc.Height, StateRoot: sc.StateRoot, Found: sc.Found, Value: sc.Value,
		Proof: sc.Proof, Header: sc.Header, Certificate: sc.Certificate}
	if res.Key != key {
		return nil, fmt.Errorf("%w: %s answered key %q for %q", ErrProof, r.endpoint, res.Key, key)
	}
	if height > 0 && res.Height != height {
		return nil, fmt.Errorf("%w: %s answered height %d for %d", ErrProof, r.endpoint, res.Height, height)
	}
	if !res.Found && len(res.Value) > 0 {
		return nil, fmt.Errorf("%w: %s answered a value for a key it says is absent", ErrProof, r.endpoint)
	}
	if prove {
		if err := c.verifyState(ctx, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// States reads keys at one height (0: the latest) in one request (POST
// /v1/states, at most gateway.MaxStateKeys keys): the results are in the order
// of keys, all at the same height. With prove, every proof is checked against
// the one header, whose certificate is checked once.
func (c *Client) States(ctx context.Context, height uint64, keys []string, prove bool) ([]*StateResult, error) {
	if len(keys) == 0 || len(keys) > gateway.MaxStateKeys {
		return nil, fmt.Errorf("%w: %d keys: ask for 1 to %d", ErrInvalid, len(keys), gateway.MaxStateKeys)
	}
	body := encoding.MustMarshal(gateway.StatesRequest{Height: height, Keys: keys, Prove: prove})
	r, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/states", body: body, ctype: "application/cbor", cbor: true})
	if err != nil {
		return nil, err
	}
	var sr gateway.StatesResponse
	if err := decodeCBOR(r, &sr); err != nil {
		return nil, err
	}
	if len(sr.Results) != len(keys) {
		return nil, fmt.Errorf("%w: %s answered %d keys for %d", ErrProof, r.endpoint, len(sr.Results), len(keys))
	}
	if height > 0 && sr.Height != height {
		return nil, fmt.Errorf("%w: %s answered height %d for %d", ErrProof, r.endpoint, sr.Height, height)
	}
	out := make([]*StateResult, len(keys))
	for i, e := range sr.Results {
		res := &StateResult{Key: e.Key, Height: sr.Height, StateRoot: sr.StateRoot, Found: e.Found, Value: e.Value,
			Proof: e.Proof, Header: sr.Header, Certificate: sr.Certificate}
		if res.Key != keys[i] {
			return nil, fmt.Errorf("%w: %s answered key %q for %q", ErrProof, r.endpoint, res.Key, keys[i])
		}
		if !res.Found && len(res.Value) > 0 {
			return nil, fmt.Errorf("%w: %s answered a value for a key it says is absent", ErrProof, r.endpoint)
		}
		if prove {
			if err := verifyProof(res); err != nil {
				return nil, err
			}
		}
		out[i] = res
	}
	if prove {
		// The proofs hold against the answer's root; anchor that root once.
		if err := c.verifyAnchor(ctx, out[0]); err != nil {
			return nil, err
		}
		for _, res := range out[1:] {
			res.Header, res.Certificate, res.Verified = out[0].Header, out[0].Certificate, true
		}
	}
	return out, nil
}

// verifyState checks proof -> state root -> header -> certificate.
func (c *Client) verifyState(ctx context.Context, res *StateResult) error {
	if err := verifyProof(res); err != nil {
		return err
	}
	return c.verifyAnchor(ctx, res)
}

// verifyProof checks res's proof against res's state root.
func verifyProof(res *StateResult) error {
	if res.Proof == nil {
		return fmt.Errorf("%w: the node sent no proof for %q", ErrProof, res.Key)
	}
	var err error
	if res.Found {
		err = res.Proof.VerifyMembership(res.StateRoot, res.Key, res.Value)
	} else {
		err = res.Proof.VerifyNonMembership(res.StateRoot, res.Key)
	}
	if err != nil {
		what := "value"
		if !res.Found {
			what = "absence"
		}
		return fmt.Errorf("%w: the %s of %q at height %d does not match state root %s: %v", ErrProof, what, res.Key, res.Height, res.StateRoot.Short(), err)
	}
	return nil
}

// verifyAnchor checks res's state root -> header -> certificate, fetching the
// header when the answer did not carry it.
func (c *Client) verifyAnchor(ctx context.Context, res *StateResult) error {
	if res.Height == 0 {
		return fmt.Errorf("%w: state at height 0 (genesis) has no header to anchor the proof: retry once block 1 is committed", ErrProof)
	}
	if res.Header == nil || res.Certificate == nil {
		hr, err := c.Header(ctx, res.Height)
		if err != nil {
			return fmt.Errorf("header %d of the proof: %w", res.Height, err)
		}
		res.Header, res.Certificate = hr.Header, hr.Certificate
	}
	if res.Header.Height != res.Height {
		return fmt.Errorf("%w: the proof's header is for height %d, not %d", ErrProof, res.Header.Height, res.Height)
	}
	if res.Header.StateRoot != res.StateRoot {
		return fmt.Errorf("%w: the header at height %d has state root %s, the proof %s", ErrProof, res.Height, res.Header.StateRoot.Short(), res.StateRoot.Short())
	}
	if err := c.checkCert(res.Header, res.Certificate); err != nil {
		return err
	}
	res.Verified = true
	return nil
}

// escapeKey escapes each segment of a state key, keeping its slashes.
func escapeKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// Nonce returns the nonce addr's next transaction should carry: its committed
// nonce plus its transactions pending in the node's mempool (up to the first
// gap), so that transactions sent back to back never share a nonce.
func (c *Client) Nonce(ctx context.Context, addr crypto.Address) (uint64, error) {
	n, err := c.Nonces(ctx, addr)
	if err != nil {
		return 0, err
	}
	return n.Next, nil
}

// Nonces returns addr's committed nonce and the next one (see Nonce), as the
// node that answers knows them.
func (c *Client) Nonces(ctx context.Context, addr crypto.Address) (*gateway.NonceInfo, error) {
	r, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/accounts/" + addr.String() + "/nonce"})
	if err != nil {
		return nil, err
	}
	var n gateway.NonceInfo
	if err := decodeJSON(r, &n); err != nil {
		return nil, err
	}
	if n.Address != addr || n.Next < n.Committed {
		return nil, fmt.Errorf("%s answered nonces %+v for %s", r.endpoint, n, addr)
	}
	return &n, nil
}

// Asset returns the definition of the asset called name, or an error matching
// ErrUnknownAsset (and ErrNotFound) when the chain has none: a balance of an
// unknown asset reads as zero, and a transfer of one fails on chain after
// costing a nonce, so callers check first.
func (c *Client) Asset(ctx context.Context, name string) (*asset.Definition, error) {
	if err := asset.CheckName(name); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	r, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/state/" + escapeKey(asset.DefKey(name)), cbor: true})
	if err != nil {
		return nil, err
	}
	var sc gateway.StateCBOR
	if err := decodeCBOR(r, &sc); err != nil {
		return nil, err
	}
	if !sc.Found {
		chain := r.chain
		if chain == "" {
			chain = c.chainID
		}
		return nil, &unknownAsset{name: name, chain: chain}
	}
	var d asset.Definition
	if err := encoding.UnmarshalLax(sc.Value, &d); err != nil {
		return nil, fmt.Errorf("asset %q: %w", name, err)
	}
	return &d, nil
}

// unknownAsset is Asset's error for an asset the chain does not define.
type unknownAsset struct{ name, chain string }

func (e *unknownAsset) Error() string {
	return fmt.Sprintf("unknown asset %q on chain %s", e.name, e.chain)
}

func (e *unknownAsset) Is(target error) bool {
	return target == ErrUnknownAsset || target == ErrNotFound
}

// Balance returns addr's committed balance of an asset (0 when it has none).
func (c *Client) Balance(ctx context.Context, assetName string, addr crypto.Address) (uint64, error) {
	v, _, err := c.ProvenBalance(ctx, assetName, addr, 0, false)
	return v, err
}

// ProvenBalance is Balance at height (0: latest), with the read proven and
// verified when prove is set.
func (c *Client) ProvenBalance(ctx context.Context, assetName string, addr crypto.Address, height uint64, prove bool) (uint64, *StateResult, error) {
	if err := asset.CheckName(assetName); err != nil {
		return 0, nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	res, err := c.State(ctx, height, asset.BalanceKey(assetName, addr), prove)
	if err != nil {
		return 0, nil, err
	}
	var v uint64
	if err := res.Decode(&v); err != nil {
		return 0, nil, fmt.Errorf("balance of %s: %w", addr, err)
	}
	return v, res, nil
}

// IsConnError reports whether err means no node could be reached.
func IsConnError(err error) bool {
	var ne net.Error
	return errors.Is(err, ErrUnavailable) || errors.As(err, &ne)
}
