// Package gateway is the HTTP JSON gateway every PLUG node serves: submit
// transactions, read them back, query state with Merkle proofs, fetch blocks and
// headers with their commit certificates, follow committed blocks and transaction
// results as a server-sent event stream, and scrape Prometheus metrics.
//
// The gateway knows the node only through Backend, so it can be tested, and
// embedded, on its own. The endpoints are documented in docs/gateway.md.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	logging "github.com/ipfs/go-log/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/proof"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
)

// Sentinel errors a Backend wraps (fmt.Errorf("%w: ...", ErrBusy)) so the gateway
// answers with the right status. Errors of chain/tx and chain/encoding that say the
// input is bad are recognised too; anything else is an internal error.
var (
	// ErrBusy: the node cannot take the request now (mempool full, shutting
	// down); 503 with Retry-After.
	ErrBusy = errors.New("node busy")
	// ErrInvalid: the request is wrong and retrying it will not help; 400.
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound: no such transaction (or not committed yet), block, header or
	// height; 404.
	ErrNotFound = errors.New("not found")
	// ErrNonceConflict: a signer's nonce in the transaction is already used by a
	// committed transaction or held by another pending one; 409. The
	// transaction was not admitted: sign it again with the next nonce.
	ErrNonceConflict = errors.New("nonce conflict")
	// ErrCommitted: a submitted transaction is already committed; POST /v1/tx
	// answers its result, as if it had waited for it.
	ErrCommitted = errors.New("transaction already committed")
	// ErrDropped: the transaction left the mempool without being committed and
	// never will be (its nonce was used by another, or the executor rejected
	// it); 410.
	ErrDropped = errors.New("transaction dropped")
	// ErrNonceGap: a signer's nonce is further ahead of its committed nonce
	// than the node holds pending transactions for; 400 nonce_gap. The
	// transactions before it were lost or never sent: read the next nonce
	// (GET /v1/accounts/{address}/nonce) and send those first.
	ErrNonceGap = errors.New("nonce too far ahead")
)

// ChainIDHeader is the response header that names the chain a gateway serves,
// on every answer, so a client can refuse reads from another chain than it
// meant to read.
const ChainIDHeader = "Plug-Chain-Id"

// Backend is what the gateway needs from a node. Implementations must be safe for
// concurrent use.
type Backend interface {
	// ChainID is the chain the node serves.
	ChainID() string
	// Status is a snapshot of the node.
	Status() Status
	// Submit admits t to the mempool and returns its ID. A transaction already in
	// the mempool is not an error.
	Submit(ctx context.Context, t *tx.Tx) (hash.Hash, error)
	// SubmitBatch admits txs in order as Submit would each, returning an ID and
	// an error per transaction; it lets the node check their signatures in one
	// batch.
	SubmitBatch(ctx context.Context, txs []*tx.Tx) ([]hash.Hash, []error)
	// TxResult is the outcome of a committed transaction; ErrNotFound while it is
	// pending or unknown.
	TxResult(ctx context.Context, id hash.Hash) (*TxResult, error)
	// TxStatus says what became of a transaction that is not committed: pending
	// in the mempool, or dropped and why; ErrNotFound when the node does not
	// know it.
	TxStatus(id hash.Hash) (*TxStatus, error)
	// Nonce gives addr's committed nonce and the nonce its next transaction
	// should carry, counting its transactions pending in the mempool.
	Nonce(addr crypto.Address) (*NonceInfo, error)
	// Block is the committed block at height (>= 1) with its commit certificate.
	Block(height uint64) (*block.Block, *consensus.Certificate, error)
	// Header is the committed header at height (>= 1) with its commit certificate.
	Header(height uint64) (*block.Header, *consensus.Certificate, error)
	// State reads key after the block at height (0: the latest committed height);
	// with prove it includes a proof against StateResult.StateRoot.
	State(height uint64, key string, prove bool) (*StateResult, error)
	// States reads keys at one height (0: the latest committed one), as State
	// would each, with every result at the same height and state root.
	States(height uint64, keys []string, prove bool) ([]*StateResult, error)
	// Subscribe streams committed blocks and transaction results until cancel is
	// called. The backend must never block on a slow subscriber: it drops events
	// or closes the channel (the stream then ends).
	Subscribe() (events <-chan Event, cancel func())
}

// Status is a snapshot of a node, served by GET /v1/status.
type Status struct {
	ChainID string `json:"chain_id"`
	// Node is the node's name.
	Node string `json:"node"`
	// Version is the node's software version.
	Version string `json:"version,omitempty"`
	// Height is the latest committed height (0: nothing after genesis yet).
	Height uint64 `json:"height"`
	// Round is the consensus round of the height being decided.
	Round     uint32    `json:"round"`
	StateRoot hash.Hash `json:"state_root"`
	// LatestHash is the hash of the latest committed header.
	LatestHash hash.Hash `json:"latest_hash"`
	// Time is the latest committed block time, Unix milliseconds.
	Time int64 `json:"time"`
	// Peers is the number of connected peers.
	Peers int `json:"peers"`
	// MempoolSize is the number of pending transactions.
	MempoolSize int `json:"mempool_size"`
	// Validator is true when this node signs votes at the current height.
	Validator bool `json:"validator"`
	// Validators is the size of the current validator set.
	Validators int `json:"validators"`
	// CatchingUp is true while the node syncs blocks it missed.
	CatchingUp bool `json:"catching_up"`
	// BestHeight is the highest height peers report (0: unknown).
	BestHeight uint64 `json:"best_height"`
}

// TxResult is a committed transaction's outcome, served by GET /v1/tx/{id}.
type TxResult struct {
	ID     hash.Hash `cbor:"1,keyasint" json:"id"`
	Height uint64    `cbor:"2,keyasint" json:"height"`
	// Index is the transaction's position in its block.
	Index uint32    `cbor:"3,keyasint" json:"index"`
	Code  exec.Code `cbor:"4,keyasint" json:"code"`
	Error string    `cbor:"5,keyasint,omitempty" json:"error,omitempty"`
	Tx    *tx.Tx    `cbor:"6,keyasint,omitempty" json:"tx,omitempty"`
	// Skipped lists the parts of a partial transform (a relay's xchain/batch)
	// that did not apply, and why, when the transaction as a whole did.
	Skipped []transform.Skip `cbor:"7,keyasint,omitempty" json:"skipped,omitempty"`
}

// Transaction states of TxStatus.
const (
	TxPending = "pending"
	TxDropped = "dropped"
)

// TxStatus is what a node knows of a transaction that is not committed, served
// by GET /v1/tx/{id}: pending (202) or dropped (410, in ErrorBody.Tx).
type TxStatus struct {
	ID hash.Hash `cbor:"1,keyasint" json:"id"`
	// Status is TxPending or TxDropped.
	Status string `cbor:"2,keyasint" json:"status"`
	// Reason says why a transaction was dropped, or what a pending one waits for.
	Reason string `cbor:"3,keyasint,omitempty" json:"reason,omitempty"`
	// Signer and Nonce name the nonce a dropped transaction carried that another
	// transaction used: By, committed at Height (By is zero when this node did
	// not see which).
	Signer *crypto.Address `cbor:"4,keyasint,omitempty" json:"signer,omitempty"`
	Nonce  uint64          `cbor:"5,keyasint,omitempty" json:"nonce,omitempty"`
	By     hash.Hash       `cbor:"6,keyasint,omitzero" json:"by,omitzero"`
	Height uint64          `cbor:"7,keyasint,omitempty" json:"height,omitempty"`
	// WaitingFor, on a pending transaction, is the nonce of Signer that no
	// pending transaction holds and that must commit first.
	WaitingFor *uint64 `cbor:"8,keyasint,omitempty" json:"waiting_for,omitempty"`
}

// NonceInfo answers GET /v1/accounts/{address}/nonce.
type NonceInfo struct {
	Address crypto.Address `json:"address"`
	// Committed is the nonce the next committed transaction of Address carries.
	Committed uint64 `json:"committed"`
	// Next is the nonce a new transaction should carry: the first from
	// Committed that no transaction pending in this node's mempool holds.
	Next uint64 `json:"next"`
	// Pending is how many transactions of Address this node holds pending.
	Pending int `json:"pending"`
}

// StateResult is a state read, served by GET /v1/state/{key...}.
type StateResult struct {
	Key string `json:"key"`
	// Height is the height read (the latest one when 0 was asked for).
	Height    uint64    `json:"height"`
	StateRoot hash.Hash `json:"state_root"`
	Found     bool      `json:"found"`
	// Value is the stored canonical CBOR (base64 in JSON); nil when not found.
	Value []byte `json:"value,omitempty"`
	// Decoded is Value decoded to plain values; the gateway fills it in when the
	// backend leaves it nil.
	Decoded any `json:"decoded,omitempty"`
	// Proof is set when asked for: membership when Found, non-membership otherwise.
	Proof *proof.StateProof `json:"proof,omitempty"`
}

// Event is one item of the event stream: a committed block (Kind "block": Height,
// Hash, Txs, Time) or a committed transaction's result (Kind "tx": ID, Height,
// Index, Code, Error).
type Event struct {
	Kind   string    `json:"kind"`
	Height uint64    `json:"height"`
	Hash   hash.Hash `json:"hash,omitzero"`
	Txs    int       `json:"txs,omitzero"`
	Time   int64     `json:"time,omitzero"`
	ID     hash.Hash `json:"id,omitzero"`
	Index  uint32    `json:"index,omitzero"`
	Code   exec.Code `json:"code,omitzero"`
	Error  string    `json:"error,omitempty"`
}

// Event kinds.
const (
	KindBlock = "block"
	KindTx    = "tx"
)

// Defaults of the options.
const (
	DefaultMaxBody    = 1 << 20
	DefaultMaxWait    = 60 * time.Second
	DefaultWait       = 10 * time.Second
	DefaultRetryAfter = time.Second
	DefaultHeartbeat  = 15 * time.Second
	DefaultMaxLag     = 10
)

// Option configures a Server.
type Option func(*Server)

// WithMaxBody limits request bodies to n bytes (larger: 413), those of
// POST /v1/txs to BatchBodyFactor x n. Default DefaultMaxBody.
func WithMaxBody(n int64) Option { return func(s *Server) { s.maxBody = n } }

// WithRegistry sets the Prometheus registry /metrics serves and the gateway's
// metrics register in. Default: a fresh registry per Server (never the global one).
func WithRegistry(r *prometheus.Registry) Option { return func(s *Server) { s.reg = r } }

// WithMetrics shares metrics the node already created with NewMetrics on the same
// registry. Default: NewMetrics(registry).
func WithMetrics(m *Metrics) Option { return func(s *Server) { s.metrics = m } }

// WithLogger sets the logger. Default: go-log's slog bridge, subsystem plug/gateway.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithMaxWait caps the timeout of POST /v1/tx?wait=true. Default DefaultMaxWait.
func WithMaxWait(d time.Duration) Option { return func(s *Server) { s.maxWait = d } }

// WithRetryAfter sets the Retry-After of 503 answers. Default DefaultRetryAfter.
func WithRetryAfter(d time.Duration) Option { return func(s *Server) { s.retryAfter = d } }

// WithHeartbeat sets the interval of event-stream heartbeats. Default DefaultHeartbeat.
func WithHeartbeat(d time.Duration) Option { return func(s *Server) { s.heartbeat = d } }

// WithMaxLag sets how many blocks behind BestHeight a catching-up node may be and
// still answer 200 on /healthz. Default DefaultMaxLag.
func WithMaxLag(n uint64) Option { return func(s *Server) { s.maxLag = n } }

// WithTLS serves HTTPS with cfg (which must hold the certificate).
func WithTLS(cfg *tls.Config) Option { return func(s *Server) { s.tls = cfg } }

// Server serves the gateway of one node.
type Server struct {
	b          Backend
	extra      []Route // the application's (WithRoutes)
	maxBody    int64
	maxWait    time.Duration
	retryAfter time.Duration
	heartbeat  time.Duration
	maxLag     uint64
	reg        *prometheus.Registry
	metrics    *Metrics
	log        *slog.Logger
	tls        *tls.Config
	handler    http.Handler

	bodyBudget  int64
	smallLane   int64
	bodyWait    time.Duration
	maxInFlight int
	rate        float64
	burst       int
	rateClients int
	lim         limits

	closeOnce sync.Once
	closing   chan struct{} // closed when shutdown starts: ends streams and waits
}

// New returns the gateway of b.
func New(b Backend, opts ...Option) *Server {
	s := &Server{
		b:          b,
		maxBody:    DefaultMaxBody,
		maxWait:    DefaultMaxWait,
		retryAfter: DefaultRetryAfter,
		heartbeat:  DefaultHeartbeat,
		maxLag:     DefaultMaxLag,
		closing:    make(chan struct{}),

		bodyBudget:  DefaultBodyBudget,
		bodyWait:    DefaultBodyWait,
		maxInFlight: DefaultMaxInFlight,
	}
	for _, o := range opts {
		o(s)
	}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	if s.metrics == nil {
		s.metrics = NewMetrics(s.reg)
	}
	if s.log == nil {
		s.log = slog.New(logging.SlogHandler()).With("logger", "plug/gateway")
	}
	if s.heartbeat <= 0 {
		s.heartbeat = DefaultHeartbeat
	}
	s.initLimits()
	s.handler = s.routes()
	return s
}

// Handler returns the gateway's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Metrics returns the collectors the node updates.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Registry returns the registry /metrics serves.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Server timeouts. Event streams and waiting submissions lift the write deadline
// for their own request.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	shutdownGrace     = 5 * time.Second
)

// ListenAndServe serves on addr (host:port) until ctx ends, then shuts down
// gracefully: event streams and waiting submissions end at once, other requests
// get a few seconds to finish.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("gateway: listen %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is ListenAndServe on an open listener (e.g. one on port 0); it closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("gateway listening", "addr", ln.Addr().String(), "tls", s.tls != nil)
	select {
	case err := <-errc:
		return fmt.Errorf("gateway: %w", err)
	case <-ctx.Done():
	}
	s.Close()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("gateway: %w", err)
	}
	return nil
}

// Close ends event streams and waiting submissions (Serve calls it on shutdown;
// call it when serving Handler with your own http.Server).
func (s *Server) Close() { s.closeOnce.Do(func() { close(s.closing) }) }
