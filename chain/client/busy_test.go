package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/gateway"
)

// TestRateLimitedAndOverloadedAreBusy: the gateway's 429 rate_limited and 503
// overloaded, and a proxy's bare 429 or 503, are busy answers: the client
// waits for Retry-After and sends the request again.
func TestRateLimitedAndOverloadedAreBusy(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		body   string
	}{
		{"rate_limited", http.StatusTooManyRequests, `{"error":"rate limited: more than 1 requests per second","code":"` + gateway.CodeRateLimited + `"}`},
		{"overloaded", http.StatusServiceUnavailable, `{"error":"gateway overloaded","code":"` + gateway.CodeOverloaded + `"}`},
		{"proxy 429", http.StatusTooManyRequests, "slow down"},
		{"proxy 503", http.StatusServiceUnavailable, "<html>no backend</html>"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) == 1 {
					w.Header().Set("Retry-After", "1")
					w.WriteHeader(c.status)
					io.WriteString(w, c.body)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"chain_id":"c","height":7}`)
			}))
			defer srv.Close()
			cl, _ := client.New([]string{srv.URL})
			start := time.Now()
			st, err := cl.Status(context.Background())
			if err != nil || st.Height != 7 {
				t.Fatalf("status after a busy answer: %+v %v", st, err)
			}
			if took := time.Since(start); took < 900*time.Millisecond || calls.Load() != 2 {
				t.Fatalf("retried after %s (%d calls), want after Retry-After 1 s", took, calls.Load())
			}
		})
	}
}

// TestBusyRetryAfterDate: Retry-After as an HTTP date is honoured too, and a
// node that stays busy ends in a *BusyError.
func TestBusyRetryAfterDate(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", time.Now().Add(3*time.Second).UTC().Format(http.TimeFormat))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"error":"rate limited","code":"rate_limited"}`)
	}))
	defer srv.Close()
	cl, _ := client.New([]string{srv.URL}, client.WithBusyRetries(0))
	_, err := cl.Status(context.Background())
	var be *client.BusyError
	var api *client.APIError
	if !errors.Is(err, client.ErrBusy) || !errors.As(err, &be) || !errors.As(err, &api) || calls.Load() != 1 {
		t.Fatalf("busy: %v (%d calls)", err, calls.Load())
	}
	if api.Status != http.StatusTooManyRequests || api.Code != gateway.CodeRateLimited || be.RetryAfter < time.Second || be.RetryAfter > 3*time.Second {
		t.Fatalf("busy answer: %+v, retry after %s", api, be.RetryAfter)
	}
}
