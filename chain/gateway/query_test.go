package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/mapreduce"
)

// queryBackend is the fake backend with a Querier fed three transactions.
type queryBackend struct{ *fakeBackend }

func (q queryBackend) Query(ctx context.Context, req *gateway.QueryRequest) (*gateway.QueryResponse, error) {
	feed := mapreduce.FeedFunc(func(ctx context.Context, f mapreduce.Filter, fn func([]byte) error) error {
		for _, t := range []string{`{"height":1,"transform":{"asset":"USD","amount":2}}`, `{"height":2,"transform":{"asset":"EUR","amount":3}}`, `{"height":3,"transform":{"asset":"USD","amount":4}}`} {
			if err := fn([]byte(t)); err != nil {
				return err
			}
		}
		return nil
	})
	res, err := mapreduce.Run(ctx, req.Script, feed, req.Filter, req.Limits.Limits())
	if err != nil {
		return nil, err
	}
	return &gateway.QueryResponse{Result: *res, From: 1, To: 3}, nil
}

func TestQueryHTTP(t *testing.T) {
	post := func(t *testing.T, url string, body any) (*http.Response, map[string]any) {
		t.Helper()
		b, _ := json.Marshal(body)
		resp, err := http.Post(url+"/v1/query", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return resp, out
	}
	// Without a Querier: 501.
	h := setup(t)
	if resp, out := post(t, h.srv.URL, map[string]any{"script": "function map(){}"}); resp.StatusCode != http.StatusNotImplemented || out["code"] != gateway.CodeNotImplemented {
		t.Fatalf("%s %v", resp.Status, out)
	}

	gw := gateway.New(queryBackend{newFake(t)})
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(func() { gw.Close(); srv.Close() })
	resp, out := post(t, srv.URL, map[string]any{"script": `function map(tx, emit) { emit(tx.transform.asset, tx.transform.amount) }
function reduce(k, v) { return v.reduce((a, b) => a + b, 0) }`})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %v", resp.Status, out)
	}
	if r := out["results"].(map[string]any); r["USD"] != float64(6) || r["EUR"] != float64(3) {
		t.Fatalf("results %v", out)
	}
	for _, c := range []struct {
		body   map[string]any
		status int
		code   string
		field  string
		want   any
	}{
		{map[string]any{"script": "function map(tx, emit) {\n emit(1,\n}"}, 400, gateway.CodeQuerySyntax, "line", float64(3)},
		{map[string]any{"script": "function mapper() {}"}, 400, gateway.CodeQueryNoMap, "", nil},
		{map[string]any{"script": "function map() { for (;;) {} }", "limits": map[string]any{"timeout_ms": 50}}, 422, gateway.CodeQueryLimit, "limit", mapreduce.LimitTime},
		{map[string]any{"script": "function map() { throw new Error('boom') }"}, 422, gateway.CodeQueryRuntime, "", nil},
		{map[string]any{"script": ""}, 400, gateway.CodeInvalid, "", nil},
		{map[string]any{"script": "function map() {}", "nope": 1}, 400, gateway.CodeInvalid, "", nil},
	} {
		resp, out := post(t, srv.URL, c.body)
		if resp.StatusCode != c.status || out["code"] != c.code || (c.field != "" && out[c.field] != c.want) {
			t.Errorf("%v: %s %v, want %d %s %s=%v", c.body, resp.Status, out, c.status, c.code, c.field, c.want)
		}
	}
}
