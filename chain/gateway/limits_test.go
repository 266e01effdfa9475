package gateway_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/gateway"
)

// failReader fails the test when the gateway reads a body it should refuse
// unread.
type failReader struct{ t *testing.T }

func (f failReader) Read([]byte) (int, error) {
	f.t.Error("the gateway read a body it should have refused by its Content-Length")
	return 0, io.EOF
}

func serve(gw *gateway.Server, req *http.Request) (*httptest.ResponseRecorder, gateway.ErrorBody) {
	rec := httptest.NewRecorder()
	gw.Handler().ServeHTTP(rec, req)
	var e gateway.ErrorBody
	json.Unmarshal(rec.Body.Bytes(), &e)
	return rec, e
}

func metricsText(t *testing.T, h *harness) string {
	t.Helper()
	resp, err := h.srv.Client().Get(h.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestContentLengthOverLimitRefusedUnread(t *testing.T) {
	h := setup(t, gateway.WithMaxBody(1000))
	for path, limit := range map[string]int64{"/v1/tx": 1000, "/v1/txs": gateway.BatchBodyFactor * 1000, "/v1/states": 1000} {
		req := httptest.NewRequest("POST", path, failReader{t})
		req.ContentLength = limit + 1
		rec, e := serve(h.gw, req)
		if rec.Code != http.StatusRequestEntityTooLarge || e.Code != gateway.CodeTooLarge {
			t.Fatalf("%s with Content-Length %d: %d %s", path, limit+1, rec.Code, rec.Body)
		}
	}
	// A chunked body (no Content-Length) is cut at the limit as it is read.
	req := httptest.NewRequest("POST", "/v1/tx", io.MultiReader(bytes.NewReader(make([]byte, 1001))))
	req.ContentLength = -1
	if rec, e := serve(h.gw, req); rec.Code != http.StatusRequestEntityTooLarge || e.Code != gateway.CodeTooLarge {
		t.Fatalf("chunked body over the limit: %d %s", rec.Code, rec.Body)
	}
	if text := metricsText(t, h); !strings.Contains(text, `plug_gateway_refused_total{reason="too_large"} 4`) {
		t.Errorf("metrics: no 4 too_large refusals:\n%s", grepPlug(text))
	}
}

// slowBody sends a request whose body arrives only when the test says so; it
// returns the writer of the body and a channel with the answer.
func slowBody(t *testing.T, h *harness, path string, length int64) (*io.PipeWriter, <-chan *http.Response) {
	t.Helper()
	pr, pw := io.Pipe()
	req, err := http.NewRequest("POST", h.srv.URL+path, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = length
	req.Header.Set("Content-Type", "application/cbor")
	out := make(chan *http.Response, 1)
	go func() {
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			t.Error(err)
			close(out)
			return
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		out <- resp
	}()
	t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) })
	return pw, out
}

func TestBodyBudget(t *testing.T) {
	const maxBody = 1 << 20
	batch := int64(gateway.BatchBodyFactor * maxBody)
	// 9 MiB: a lane of 1.125 MiB for small bodies, 8 MiB (one largest batch)
	// for the rest.
	h := setup(t, gateway.WithMaxBody(maxBody), gateway.WithBodyBudget(9<<20, 200*time.Millisecond),
		gateway.WithRetryAfter(2*time.Second))
	// A batch of the largest size reserves the large lane before its body
	// arrives...
	pw, first := slowBody(t, h, "/v1/txs", batch)
	pw.Write(make([]byte, 10))
	waitFor(t, "the batch's reservation", func() bool {
		return strings.Contains(metricsText(t, h), "plug_gateway_body_bytes_in_flight 8.388608e+06")
	})
	// ... so a 500 kB body waits, then is told to come back...
	start := time.Now()
	var e gateway.ErrorBody
	resp := h.do(t, "POST", "/v1/tx", "application/cbor", make([]byte, 500_000), &e)
	wantStatus(t, resp, http.StatusServiceUnavailable)
	if e.Code != gateway.CodeOverloaded || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("over the budget: code %q, Retry-After %q (%s)", e.Code, resp.Header.Get("Retry-After"), e.Error)
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Fatalf("refused after %s, without waiting for room", took)
	}
	// ... while a transaction still gets in through the small lane.
	wantStatus(t, h.do(t, "POST", "/v1/tx", "application/cbor", encodeTx(t, signedTx(t, 0)), nil), http.StatusAccepted)
	// /healthz and /metrics take no budget.
	wantStatus(t, h.do(t, "GET", "/healthz", "", nil, nil), http.StatusOK)
	// The batch completes (garbage: 400) and gives its reservation back.
	pw.Write(make([]byte, batch-10))
	pw.Close()
	if r := <-first; r == nil || r.StatusCode != http.StatusBadRequest {
		t.Fatalf("batch answer: %v", r)
	}
	waitFor(t, "the reservation's release", func() bool {
		return strings.Contains(metricsText(t, h), "plug_gateway_body_bytes_in_flight 0")
	})
	wantStatus(t, h.do(t, "POST", "/v1/tx", "application/cbor", make([]byte, 500_000), nil), http.StatusRequestEntityTooLarge) // read, then too large for a transaction
	if text := metricsText(t, h); !strings.Contains(text, `plug_gateway_refused_total{reason="body_budget"} 1`) {
		t.Errorf("metrics: no body_budget refusal:\n%s", grepPlug(text))
	}

	// A chunked body reserves as it is read (a chunk ahead), from the large
	// lane.
	pr, pw2 := io.Pipe()
	t.Cleanup(func() { pw2.CloseWithError(io.ErrUnexpectedEOF) })
	req, _ := http.NewRequest("POST", h.srv.URL+"/v1/txs", pr)
	req.ContentLength = -1
	chunked := make(chan int, 1)
	go func() {
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			chunked <- 0
			return
		}
		resp.Body.Close()
		chunked <- resp.StatusCode
	}()
	pw2.Write(make([]byte, 7_600_000))
	waitFor(t, "the chunked reservation", func() bool {
		return bodyBytes(t, h) >= 7_600_000
	})
	// 500 kB fit in what the large lane has left, 1 MB does not.
	wantStatus(t, h.do(t, "POST", "/v1/tx", "application/cbor", make([]byte, 500_000), nil), http.StatusRequestEntityTooLarge) // read, then too large for a transaction
	wantStatus(t, h.do(t, "POST", "/v1/tx", "application/cbor", make([]byte, 1_000_000), nil), http.StatusServiceUnavailable)
	pw2.Close()
	if code := <-chunked; code != http.StatusBadRequest {
		t.Fatalf("chunked batch: %d", code)
	}
}

func TestRateLimit(t *testing.T) {
	h := setup(t, gateway.WithRateLimit(0.5, 2))
	wantStatus(t, h.do(t, "GET", "/v1/status", "", nil, nil), http.StatusOK)
	wantStatus(t, h.do(t, "GET", "/v1/nope", "", nil, nil), http.StatusNotFound)
	var e gateway.ErrorBody
	resp := h.do(t, "GET", "/v1/status", "", nil, &e)
	wantStatus(t, resp, http.StatusTooManyRequests)
	if e.Code != gateway.CodeRateLimited {
		t.Fatalf("code %q (%s)", e.Code, e.Error)
	}
	// One token every 2 s: the next is at most 2 s away.
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra < 1 || ra > 2 {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	// Health checks and scrapes are never limited.
	for range 10 {
		wantStatus(t, h.do(t, "GET", "/healthz", "", nil, nil), http.StatusOK)
		wantStatus(t, h.do(t, "GET", "/metrics", "", nil, nil), http.StatusOK)
	}
	if text := metricsText(t, h); !strings.Contains(text, `plug_gateway_refused_total{reason="rate_limited"} 1`) {
		t.Errorf("metrics: no rate_limited refusal:\n%s", grepPlug(text))
	}

	// Clients are told apart by IP; IPv6 clients by /64.
	gw := gateway.New(newFake(t), gateway.WithRateLimit(0.001, 1))
	for _, c := range []struct {
		addr string
		want int
	}{
		{"10.0.0.1:1000", 200}, {"10.0.0.1:1001", 429}, {"10.0.0.2:1000", 200},
		{"[2001:db8::1]:1000", 200}, {"[2001:db8::2]:1000", 429}, {"[2001:db8:0:1::1]:1000", 200},
	} {
		req := httptest.NewRequest("GET", "/v1/status", nil)
		req.RemoteAddr = c.addr
		if rec, _ := serve(gw, req); rec.Code != c.want {
			t.Errorf("%s: %d, want %d", c.addr, rec.Code, c.want)
		}
	}
}

func TestRateLimitForgetsOldClients(t *testing.T) {
	gw := gateway.New(newFake(t), gateway.WithRateLimit(0.001, 1), gateway.WithRateLimitClients(2))
	get := func(addr string) int {
		req := httptest.NewRequest("GET", "/v1/status", nil)
		req.RemoteAddr = addr
		rec, _ := serve(gw, req)
		return rec.Code
	}
	get("10.0.0.1:1")
	if get("10.0.0.1:1") != http.StatusTooManyRequests {
		t.Fatal("second request within the limit")
	}
	get("10.0.0.2:1")
	get("10.0.0.3:1") // the limiter map holds 2 clients: 10.0.0.1 is forgotten
	if code := get("10.0.0.1:1"); code != http.StatusOK {
		t.Fatalf("forgotten client: %d", code)
	}
}

func TestMaxInFlight(t *testing.T) {
	h := setup(t, gateway.WithMaxInFlight(1))
	pw, first := slowBody(t, h, "/v1/tx", 100)
	pw.Write([]byte{0xa0})
	waitFor(t, "the first request in flight", func() bool {
		resp, err := h.srv.Client().Get(h.srv.URL + "/v1/status")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	var e gateway.ErrorBody
	resp := h.do(t, "GET", "/v1/status", "", nil, &e)
	wantStatus(t, resp, http.StatusServiceUnavailable)
	if e.Code != gateway.CodeOverloaded || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the in-flight bound: %q %q", e.Code, resp.Header.Get("Retry-After"))
	}
	wantStatus(t, h.do(t, "GET", "/healthz", "", nil, nil), http.StatusOK)
	pw.Write(make([]byte, 99))
	pw.Close()
	<-first
	wantStatus(t, h.do(t, "GET", "/v1/status", "", nil, nil), http.StatusOK)
	if text := metricsText(t, h); !strings.Contains(text, `plug_gateway_refused_total{reason="in_flight"}`) {
		t.Errorf("metrics: no in_flight refusal:\n%s", grepPlug(text))
	}
}

func grepPlug(text string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "plug_gateway") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// bodyBytes reads plug_gateway_body_bytes_in_flight.
func bodyBytes(t *testing.T, h *harness) float64 {
	for _, l := range strings.Split(metricsText(t, h), "\n") {
		if v, ok := strings.CutPrefix(l, "plug_gateway_body_bytes_in_flight "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}
