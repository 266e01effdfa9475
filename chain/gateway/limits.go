package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"
)

// Resource limits of the gateway. Every request except GET /healthz and
// GET /metrics (which stay responsive under a flood, for load balancers and
// Prometheus) passes, in order:
//
//  1. the per-client rate limit (WithRateLimit; off by default in the library,
//     on in a node's config.toml): a token bucket per client IP (IPv6: per /64),
//     429 rate_limited with Retry-After when empty;
//  2. the in-flight bound (WithMaxInFlight): at most that many requests are
//     being handled at once (event streams excepted, they hold no request
//     memory), 503 overloaded beyond;
//  3. when it reads a body, the body budget (WithBodyBudget): the bytes of
//     request bodies held in memory across all connections. A body with a
//     Content-Length over the route's limit is refused with 413 before it is
//     read; one within it reserves its length before it is read (into one buffer
//     of exactly that size), a chunked body reserves as it is read. An eighth
//     of the budget is a lane of its own for bodies of at most SmallBody, so
//     transactions still get in while large batches fill the rest. A request
//     that cannot reserve within the budget wait answers 503 overloaded with
//     Retry-After. The reservation is released when the answer is written
//     (POST /v1/tx?wait=true releases it once the transaction is decoded).

// Defaults of the limits.
const (
	// DefaultBodyBudget is the default byte budget of request bodies in flight:
	// eight batches of the default largest size (BatchBodyFactor x DefaultMaxBody).
	DefaultBodyBudget = 64 << 20
	// DefaultBodyWait is how long a request waits for body budget before 503.
	DefaultBodyWait = time.Second
	// DefaultMaxInFlight bounds the requests handled at once.
	DefaultMaxInFlight = 512
	// DefaultRateClients bounds the clients whose rate limiters are kept (least
	// recently seen ones are forgotten first).
	DefaultRateClients = 10_000
)

// Error codes of the limits (see also the codes in http.go).
const (
	// CodeRateLimited: 429, the client sent more requests than its rate limit.
	CodeRateLimited = "rate_limited"
	// CodeOverloaded: 503, the gateway's in-flight bound or body budget is
	// exhausted; retry after Retry-After.
	CodeOverloaded = "overloaded"
)

var (
	// ErrRateLimited is the error of a 429 rate_limited answer.
	ErrRateLimited = errors.New("rate limited")
	// ErrOverloaded is the error of a 503 overloaded answer.
	ErrOverloaded = errors.New("gateway overloaded")
)

// Reasons of plug_gateway_refused_total.
const (
	refusedRate     = "rate_limited"
	refusedInFlight = "in_flight"
	refusedBudget   = "body_budget"
	refusedTooLarge = "too_large"
)

// WithBodyBudget bounds the bytes of request bodies held in memory at once
// across all connections to bytes, and sets how long a request waits for room
// before it is answered 503 overloaded. An eighth of it is kept for bodies of
// at most SmallBody; the rest is never below the largest body a request may
// carry (BatchBodyFactor x WithMaxBody). bytes <= 0 removes the budget. Default
// DefaultBodyBudget, DefaultBodyWait.
func WithBodyBudget(bytes int64, wait time.Duration) Option {
	return func(s *Server) { s.bodyBudget, s.bodyWait = bytes, wait }
}

// WithMaxInFlight bounds the requests handled at once (GET /healthz, /metrics
// and /v1/events streams not counted); beyond it requests answer 503
// overloaded at once. n <= 0 removes the bound. Default DefaultMaxInFlight.
func WithMaxInFlight(n int) Option { return func(s *Server) { s.maxInFlight = n } }

// WithRateLimit limits each client (by IP address; IPv6 by /64) to perSecond
// requests per second on average with bursts of burst; beyond it requests
// answer 429 rate_limited with Retry-After. The limit keys on the TCP peer: behind
// a proxy every client shares the proxy's. perSecond <= 0 disables it (the
// default of the library; a node's config.toml turns it on).
func WithRateLimit(perSecond float64, burst int) Option {
	return func(s *Server) { s.rate, s.burst = perSecond, burst }
}

// WithRateLimitClients bounds the clients whose limiters are remembered
// (least recently seen first out; a forgotten client starts with a full
// burst). Default DefaultRateClients.
func WithRateLimitClients(n int) Option { return func(s *Server) { s.rateClients = n } }

// limitError is a refusal by a limit, with the Retry-After to answer.
type limitError struct {
	err        error
	retryAfter time.Duration
	msg        string
}

func (e *limitError) Error() string { return fmt.Sprintf("%v: %s", e.err, e.msg) }
func (e *limitError) Unwrap() error { return e.err }

// limits holds the gateway's limiters.
type limits struct {
	budget *semaphore.Weighted // nil: no body budget
	// small is the lane of the budget kept for small bodies (SmallBody at
	// most, known length): the budget's waiters are served in order, so
	// without it one transaction would queue behind every large batch.
	small    *semaphore.Weighted
	inFlight chan struct{} // nil: no in-flight bound
	rate     rate.Limit
	burst    int
	clients  *lru.Cache[string, *rate.Limiter] // nil: no rate limit
}

func (s *Server) initLimits() {
	if s.bodyWait <= 0 {
		s.bodyWait = DefaultBodyWait
	}
	if s.bodyBudget > 0 {
		small := s.bodyBudget / smallLaneShare
		large := max(s.bodyBudget-small, BatchBodyFactor*s.maxBody)
		s.lim.budget, s.lim.small = semaphore.NewWeighted(large), semaphore.NewWeighted(small)
		s.smallLane = small
	}
	if s.maxInFlight > 0 {
		s.lim.inFlight = make(chan struct{}, s.maxInFlight)
	}
	if s.rate > 0 {
		if s.burst < 1 {
			s.burst = max(1, int(math.Ceil(s.rate)))
		}
		if s.rateClients <= 0 {
			s.rateClients = DefaultRateClients
		}
		s.lim.rate, s.lim.burst = rate.Limit(s.rate), s.burst
		s.lim.clients, _ = lru.New[string, *rate.Limiter](s.rateClients)
	}
}

// exempt says whether route escapes every limit.
func exempt(route string) bool { return route == "GET /healthz" || route == "GET /metrics" }

// clientKey is the rate limit's key of a request: its peer's IP, IPv6 by /64.
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// allow takes a token of r's client, or returns a 429 error saying when one
// will be there.
func (l *limits) allow(r *http.Request) error {
	if l.clients == nil {
		return nil
	}
	key := clientKey(r)
	lim, ok := l.clients.Get(key)
	if !ok {
		lim = rate.NewLimiter(l.rate, l.burst)
		if prev, found, _ := l.clients.PeekOrAdd(key, lim); found {
			lim = prev
		}
	}
	now := time.Now()
	res := lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return &limitError{err: ErrRateLimited, retryAfter: d,
			msg: fmt.Sprintf("more than %g requests per second (burst %d) from %s", float64(l.rate), l.burst, key)}
	}
	return nil
}

// enter takes an in-flight slot; the returned func gives it back.
func (l *limits) enter() (func(), error) {
	if l.inFlight == nil {
		return func() {}, nil
	}
	select {
	case l.inFlight <- struct{}{}:
		return func() { <-l.inFlight }, nil
	default:
		return nil, &limitError{err: ErrOverloaded, msg: fmt.Sprintf("%d requests in flight", cap(l.inFlight))}
	}
}

// SmallBody is the largest body of known length served from the small lane
// of the body budget (an eighth of it): one transaction and its JSON
// encoding's overhead. Floods of large bodies cannot hold small ones back.
const (
	SmallBody      = 128 << 10
	smallLaneShare = 8
)

// bodyHold is a request's reservation of body budget, released when its
// answer is written (or earlier, by releaseBody).
type bodyHold struct {
	s            *Server
	mu           sync.Mutex
	large, small int64
}

type holdKey struct{}

// acquire reserves n more bytes, waiting up to the budget wait; small says n
// is a whole body of known length that may come from the small lane.
func (h *bodyHold) acquire(ctx context.Context, n int64, small bool) error {
	if h == nil || h.s.lim.budget == nil || n <= 0 {
		return nil
	}
	s := h.s
	lane := s.lim.budget
	if small && n <= SmallBody && n <= s.smallLane {
		lane = s.lim.small
	}
	ctx, cancel := context.WithTimeout(ctx, s.bodyWait)
	defer cancel()
	if err := lane.Acquire(ctx, n); err != nil {
		return &limitError{err: ErrOverloaded, retryAfter: s.retryAfter,
			msg: fmt.Sprintf("request bodies in flight fill the gateway's budget of %d bytes", s.bodyBudget)}
	}
	h.mu.Lock()
	if lane == s.lim.small {
		h.small += n
	} else {
		h.large += n
	}
	h.mu.Unlock()
	s.metrics.bodyBytes(float64(n))
	return nil
}

// release gives the whole reservation back.
func (h *bodyHold) release() {
	if h == nil {
		return
	}
	h.mu.Lock()
	large, small := h.large, h.small
	h.large, h.small = 0, 0
	h.mu.Unlock()
	if large > 0 {
		h.s.lim.budget.Release(large)
	}
	if small > 0 {
		h.s.lim.small.Release(small)
	}
	if large+small > 0 {
		h.s.metrics.bodyBytes(-float64(large + small))
	}
}

// releaseBody releases r's body reservation before the request ends: for
// handlers that go on waiting after they no longer hold the body.
func releaseBody(r *http.Request) {
	h, _ := r.Context().Value(holdKey{}).(*bodyHold)
	h.release()
}

// readChunk is how much of a body of unknown length is reserved and read at a
// time.
const readChunk = 32 << 10

// readBody reads a request body of at most limit bytes within the body budget:
// a Content-Length above limit is 413 at once, without reading; a known length
// is reserved, then read into one buffer of that size; a chunked body is
// reserved chunk by chunk as it is read. A longer body is 413, a broken one 400,
// no room in the budget 503 overloaded.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		s.metrics.refused(refusedTooLarge)
		return nil, fmt.Errorf("request body of %d bytes exceeds %d bytes: %w", r.ContentLength, limit,
			&http.MaxBytesError{Limit: limit})
	}
	hold, _ := r.Context().Value(holdKey{}).(*bodyHold)
	refuse := func(err error) ([]byte, error) {
		if errors.Is(err, ErrOverloaded) {
			s.metrics.refused(refusedBudget)
		}
		return nil, err
	}
	if r.ContentLength >= 0 {
		if err := hold.acquire(r.Context(), r.ContentLength, true); err != nil {
			return refuse(err)
		}
		body := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, invalid("read body: %v", err)
		}
		return body, nil
	}
	// Chunked: reserve before each chunk read, so the bytes held never run
	// ahead of the budget.
	var body []byte
	for {
		n := min(readChunk, limit-int64(len(body)))
		if n == 0 {
			// At the limit: one more byte makes it too large.
			var one [1]byte
			if got, _ := io.ReadFull(r.Body, one[:]); got > 0 {
				s.metrics.refused(refusedTooLarge)
				return nil, fmt.Errorf("request body exceeds %d bytes: %w", limit, &http.MaxBytesError{Limit: limit})
			}
			return body, nil
		}
		if err := hold.acquire(r.Context(), n, false); err != nil {
			return refuse(err)
		}
		body = append(body, make([]byte, n)...)
		got, err := io.ReadFull(r.Body, body[len(body)-int(n):])
		body = body[:len(body)-int(n)+got]
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return body, nil
		}
		if err != nil {
			return nil, invalid("read body: %v", err)
		}
	}
}
