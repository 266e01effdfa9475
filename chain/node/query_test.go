package node

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/mapreduce"
)

// TestQuery runs map-reduce queries on a node: the feed renders transfers as
// GET /v1/tx/{id} does, with time and the decoded transform; the filters keep
// what they say; a node runs at most MaxQueries at once.
func TestQuery(t *testing.T) {
	tn := newTestNet(t, 1)
	tn.waitHeight(0, 1, 10*time.Second)
	n := tn.nodes[0]
	bob := seedKey(t, 77).Public().Address()
	var ids []string
	for i, amt := range []uint64{3, 4, 5} {
		x := tn.transfer(uint64(i), bob, amt)
		id, err := n.Submit(context.Background(), x)
		if err != nil {
			t.Fatal(err)
		}
		tn.waitTx(0, id, 10*time.Second)
		ids = append(ids, id.String())
	}
	sum := `function map(tx, emit) {
  if (tx.status !== "ok" || typeof tx.time !== "number" || tx.time_rfc3339.length < 20) throw new Error("bad tx " + JSON.stringify(tx));
  emit(tx.transform.asset + ":" + tx.transform.to, tx.transform.amount);
  emit("ids", tx.id);
}
function reduce(k, v) { return k === "ids" ? v : v.reduce((a, b) => a + b, 0) }`
	run := func(f mapreduce.Filter) *gateway.QueryResponse {
		t.Helper()
		res, err := n.Query(context.Background(), &gateway.QueryRequest{Script: sum, Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := run(mapreduce.Filter{Type: "asset/transfer", Asset: "STAKE", Account: tn.admin.Public().Address().String()})
	if got := string(res.Results["STAKE:"+bob.String()]); got != "12" {
		t.Fatalf("sum %s, results %v", got, res.Results)
	}
	if got := string(res.Results["ids"]); got != `["`+ids[0]+`","`+ids[1]+`","`+ids[2]+`"]` {
		t.Fatalf("ids %s, want %v", got, ids)
	}
	if res.From != 1 || res.To < 1 || res.Stats.TxsScanned != 3 {
		t.Fatalf("%+v", res)
	}
	for _, f := range []mapreduce.Filter{{Type: "asset/mint"}, {Asset: "USD"}, {Account: bob.String()}} {
		if res := run(f); len(res.Results) != 0 || res.Stats.TxsScanned != 0 {
			t.Errorf("filter %+v kept %v", f, res.Results)
		}
	}
	if _, err := n.Query(context.Background(), &gateway.QueryRequest{Script: sum, Filter: mapreduce.Filter{Account: "nope"}}); !errors.Is(err, gateway.ErrInvalid) {
		t.Fatalf("bad account: %v", err)
	}

	// DefaultMaxQueries endless loops hold the slots: the next query is busy.
	loop := &gateway.QueryRequest{Script: `function map() {} for (;;) {}`, Limits: &gateway.QueryLimits{TimeoutMS: 1500}}
	var wg sync.WaitGroup
	errs := make([]error, DefaultMaxQueries)
	for i := range DefaultMaxQueries {
		wg.Go(func() { _, errs[i] = n.Query(context.Background(), loop) })
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := n.Query(context.Background(), &gateway.QueryRequest{Script: sum}); !errors.Is(err, ErrBusy) {
		t.Fatalf("a query beyond the slots: %v", err)
	}
	wg.Wait()
	for _, err := range errs {
		var qe *mapreduce.Error
		if !errors.As(err, &qe) || qe.Limit != mapreduce.LimitTime {
			t.Fatalf("endless loop: %v", err)
		}
	}
	run(mapreduce.Filter{})
}
