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
	"strconv"
	"time"

	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/gateway"
)

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

// maxBusyWait caps the Retry-After a client honours between busy rounds.
const maxBusyWait = 30 * time.Second

// do sends r to the endpoints in turn, starting with the current one, and
// returns the first answer that is not a connection failure or a busy answer
// (503 busy or overloaded, 429 rate_limited). When every endpoint is busy it
// waits for the Retry-After of the last (at least 200 ms, at most 30 s) and
// tries them all again, up to WithBusyRetries times, then returns a
// *BusyError. Busy answers are refusals before any work, so sending the
// request again is always safe.
func (c *Client) do(ctx context.Context, r request) (*response, error) {
	for attempt := 0; ; attempt++ {
		resp, err := c.round(ctx, r)
		var api *APIError
		if err == nil || !errors.Is(err, ErrBusy) || !errors.As(err, &api) {
			return resp, err
		}
		if attempt >= c.retries {
			return nil, &BusyError{RetryAfter: max(api.RetryAfter, time.Second), Last: err}
		}
		select {
		case <-time.After(min(max(api.RetryAfter, 200*time.Millisecond), maxBusyWait)):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// round sends r to each endpoint at most once, as do says.
func (c *Client) round(ctx context.Context, r request) (*response, error) {
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
			if errors.Is(api, ErrBusy) {
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
		api.RetryAfter = retryAfter(res.Header.Get("Retry-After"), time.Now())
		if res.StatusCode >= 500 && !errors.Is(api, ErrBusy) {
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

// IsConnError reports whether err means no node could be reached.
func IsConnError(err error) bool {
	var ne net.Error
	return errors.Is(err, ErrUnavailable) || errors.As(err, &ne)
}

// retryAfter reads a Retry-After header: delay seconds or an HTTP date
// (RFC 9110 10.2.3); 0 when absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
