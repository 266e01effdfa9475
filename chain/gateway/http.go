package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/tx"
)

// Error codes of the JSON error body.
const (
	CodeBusy     = "busy"
	CodeInvalid  = "invalid"
	CodeNotFound = "not_found"
	CodeDropped  = "dropped"
	CodeConflict = "nonce_conflict"
	CodeNonceGap = "nonce_gap"
	CodeTooLarge = "too_large"
	CodeMethod   = "method_not_allowed"
	CodeTimeout  = "timeout"
	CodeInternal = "internal"
)

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	// Tx is the dropped transaction's status, in a CodeDropped answer.
	Tx *TxStatus `json:"tx,omitempty"`
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/tx", s.handleSubmit)
	mux.HandleFunc("POST /v1/txs", s.handleSubmitBatch)
	mux.HandleFunc("GET /v1/tx/{id}", s.handleTx)
	mux.HandleFunc("GET /v1/txs", s.handleTxs)
	mux.HandleFunc("GET /v1/accounts/{address}/nonce", s.handleNonce)
	mux.HandleFunc("GET /v1/state/{key...}", s.handleState)
	mux.HandleFunc("POST /v1/states", s.handleStates)
	mux.HandleFunc("GET /v1/blocks/{height}", s.handleBlock)
	mux.HandleFunc("GET /v1/headers/latest", s.handleLatestHeader)
	mux.HandleFunc("GET /v1/headers/{height}", s.handleHeader)
	mux.HandleFunc("GET /v1/status", s.handleStatus)
	mux.HandleFunc("GET /v1/events", s.handleEvents)
	mux.HandleFunc("POST /v1/query", s.handleQuery)
	for _, rt := range s.extra {
		mux.HandleFunc(rt.Pattern, s.handleRoute(rt))
	}
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.Handle("GET /metrics", promhttp.InstrumentMetricHandler(s.reg,
		promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})))
	return &router{s: s, mux: mux}
}

// router wraps the mux with panic recovery, metrics and JSON 404/405 answers.
type router struct {
	s   *Server
	mux *http.ServeMux
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	_, route := rt.mux.Handler(r)
	label := route
	if label == "" {
		label = "unmatched"
	}
	rw := &recorder{ResponseWriter: w}
	rw.Header().Set(ChainIDHeader, rt.s.b.ChainID())
	var hold *bodyHold
	defer func() {
		hold.release()
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			rt.s.log.Error("gateway handler panicked", "route", label, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if !rw.wrote {
				rt.s.fail(rw, r, fmt.Errorf("panic: %v", p))
			}
		}
		code := rw.status
		if code == 0 {
			code = http.StatusOK
		}
		rt.s.metrics.observeHTTP(label, code, time.Since(start))
	}()
	if !exempt(route) {
		if err := rt.s.lim.allow(r); err != nil {
			rt.s.metrics.refused(refusedRate)
			rt.s.fail(rw, r, err)
			return
		}
		if route != "GET /v1/events" {
			leave, err := rt.s.lim.enter()
			if err != nil {
				rt.s.metrics.refused(refusedInFlight)
				rt.s.fail(rw, r, err)
				return
			}
			defer leave()
		}
		if rt.s.lim.budget != nil && r.Body != nil && r.Body != http.NoBody {
			hold = &bodyHold{s: rt.s}
			r = r.WithContext(context.WithValue(r.Context(), holdKey{}, hold))
		}
	}
	if route == "" {
		// The mux answers 404 and 405 in plain text: keep its status and Allow
		// header, answer in JSON. (Its redirects to clean paths pass through.)
		probe := &probeWriter{h: http.Header{}}
		rt.mux.ServeHTTP(probe, r)
		switch probe.status {
		case http.StatusMethodNotAllowed:
			rw.Header().Set("Allow", probe.h.Get("Allow"))
			writeJSON(rw, http.StatusMethodNotAllowed, ErrorBody{Error: r.Method + " is not allowed on " + r.URL.Path, Code: CodeMethod})
			return
		case http.StatusNotFound:
			writeJSON(rw, http.StatusNotFound, ErrorBody{Error: "no such endpoint: " + r.URL.Path, Code: CodeNotFound})
			return
		}
	}
	rt.mux.ServeHTTP(rw, r)
}

func (m *Metrics) observeHTTP(route string, code int, took time.Duration) {
	if m == nil {
		return
	}
	m.HTTPRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.HTTPRequestSeconds.WithLabelValues(route).Observe(took.Seconds())
}

// recorder remembers the status; Unwrap lets http.ResponseController reach the
// connection (flushes, deadlines).
type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *recorder) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

func (w *recorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// probeWriter captures the mux's own 404/405 answer.
type probeWriter struct {
	h      http.Header
	status int
}

func (p *probeWriter) Header() http.Header { return p.h }
func (p *probeWriter) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}
func (p *probeWriter) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}

// writeJSON encodes v before writing anything, so an encoding failure still gets
// a clean 500.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(ErrorBody{Error: "internal error: cannot encode the answer", Code: CodeInternal})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// reply answers v in JSON, or in canonical CBOR when the client asks for it with
// Accept: application/cbor.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, status int, v any) {
	if wantsCBOR(r) {
		b, err := encoding.Marshal(v)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/cbor")
		w.WriteHeader(status)
		w.Write(b)
		return
	}
	writeJSON(w, status, v)
}

func wantsCBOR(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "application/cbor" {
			return true
		}
	}
	return false
}

// classify maps an error to its HTTP status and error code.
func classify(err error) (int, string) {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, ErrBusy):
		return http.StatusServiceUnavailable, CodeBusy
	case errors.Is(err, ErrOverloaded):
		return http.StatusServiceUnavailable, CodeOverloaded
	case errors.Is(err, ErrRateLimited):
		return http.StatusTooManyRequests, CodeRateLimited
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, CodeNotFound
	case errors.Is(err, ErrDropped):
		return http.StatusGone, CodeDropped
	case errors.Is(err, ErrNonceConflict):
		return http.StatusConflict, CodeConflict
	case errors.Is(err, ErrNonceGap):
		return http.StatusBadRequest, CodeNonceGap
	case errors.As(err, &mbe), errors.Is(err, tx.ErrTooLarge), errors.Is(err, encoding.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, CodeTooLarge
	case errors.Is(err, ErrInvalid),
		errors.Is(err, tx.ErrMalformed), errors.Is(err, tx.ErrWrongChain),
		errors.Is(err, tx.ErrBadProof), errors.Is(err, tx.ErrBadNonce),
		errors.Is(err, encoding.ErrMalformed), errors.Is(err, encoding.ErrNonCanonical):
		return http.StatusBadRequest, CodeInvalid
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, CodeTimeout
	}
	return http.StatusInternalServerError, CodeInternal
}

// fail answers err as a JSON error. Internal errors are logged, and their text is
// not shown to the client.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code := classify(err)
	msg := err.Error()
	switch status {
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		wait := s.retryAfter
		var le *limitError
		if errors.As(err, &le) && le.retryAfter > 0 {
			wait = le.retryAfter
		}
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	case http.StatusInternalServerError:
		// err.Error(): an error value is a struct to slog's JSON and zap
		// handlers, and most marshal to {}.
		s.log.Error("gateway request failed", "method", r.Method, "path", r.URL.Path, "err", err.Error())
		msg = "internal error (see the node's log)"
		if storageFault(err) {
			code, msg = CodeStorage, "this node's database is damaged (see the node's log); ask another node"
		}
	}
	writeJSON(w, status, ErrorBody{Error: msg, Code: code})
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// readTx reads a POST /v1/tx body: canonical CBOR (application/cbor or
// application/octet-stream) or JSON {"tx": "<base64 CBOR>"}. Other content types
// are sniffed: a body starting with '{' is JSON.
func (s *Server) readTx(w http.ResponseWriter, r *http.Request) (*tx.Tx, error) {
	body, err := s.readBody(w, r, s.maxBody)
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, invalid("empty body: send the CBOR-encoded transaction, or JSON {\"tx\": \"<base64 CBOR>\"}")
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	isJSON := mt == "application/json"
	if mt != "application/json" && mt != "application/cbor" && mt != "application/octet-stream" {
		isJSON = bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("{"))
	}
	raw := body
	if isJSON {
		var req struct {
			Tx []byte `json:"tx"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return nil, invalid("JSON body: %v (want {\"tx\": \"<base64 CBOR>\"})", err)
		}
		if dec.More() {
			return nil, invalid("JSON body: trailing data")
		}
		if len(req.Tx) == 0 {
			return nil, invalid("JSON body: \"tx\" is missing or empty")
		}
		raw = req.Tx
	}
	t, err := tx.Decode(raw)
	if err != nil {
		return nil, err
	}
	if want := s.b.ChainID(); t.Body.ChainID != want {
		return nil, fmt.Errorf("%w: transaction is for chain %q, this node serves %q", tx.ErrWrongChain, t.Body.ChainID, want)
	}
	return t, nil
}

func parseHeight(s string) (uint64, error) {
	h, err := strconv.ParseUint(s, 10, 64)
	if err != nil || h == 0 {
		return 0, invalid("height %q: want a positive integer", s)
	}
	return h, nil
}
