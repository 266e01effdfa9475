package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/transform"
)

func TestParseTxQuery(t *testing.T) {
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	cur := gateway.TxPos{Height: 7, Index: 3}.Cursor()
	r := httptest.NewRequest(http.MethodGet, "/v1/txs?account=ab&asset=USD&type=asset/transfer&xtx=cd&from=5&to=2026-12-01T00:00:00Z&limit=20&after="+cur+"&prove=true", nil)
	q, err := gateway.ParseTxQuery(r)
	if err != nil {
		t.Fatal(err)
	}
	want := []transform.Term{{Kind: "account", Value: "ab"}, {Kind: "asset", Value: "USD"}, {Kind: "type", Value: "asset/transfer"}, {Kind: "xtx", Value: "cd"}}
	if len(q.Terms) != 4 || q.From != 5 || q.ToTime != at.UnixMilli() || q.To != 0 || q.FromTime != 0 ||
		q.Limit != 20 || q.After == nil || *q.After != (gateway.TxPos{Height: 7, Index: 3}) || !q.Prove {
		t.Fatalf("query %+v", q)
	}
	for i := range want {
		if q.Terms[i] != want[i] {
			t.Fatalf("term %d: %+v, want %+v", i, q.Terms[i], want[i])
		}
	}
	for _, bad := range []string{"from=yesterday", "limit=0", "limit=100000", "after=xyz", "prove=maybe", "to=1969-01-01T00:00:00Z"} {
		if _, err := gateway.ParseTxQuery(httptest.NewRequest(http.MethodGet, "/v1/txs?"+bad, nil)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// A backend without an index answers 404.
func TestTxsWithoutIndex(t *testing.T) {
	h := setup(t)
	var e gateway.ErrorBody
	resp := h.do(t, http.MethodGet, "/v1/txs?account=ab", "", nil, &e)
	wantStatus(t, resp, http.StatusNotFound)
	if e.Code != gateway.CodeNotFound {
		t.Fatalf("code %q", e.Code)
	}
}
