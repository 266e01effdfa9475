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
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/plugchain/plug/chain/valset"
)

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

// WithBusyRetries sets how many times a request every endpoint answered busy
// (503, 429) is sent again, after the node's Retry-After, before the client
// gives up with a *BusyError. Default 3.
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
