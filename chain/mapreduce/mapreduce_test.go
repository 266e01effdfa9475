package mapreduce_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/mapreduce"
)

// sliceFeed yields its transactions, filtered by type only.
type sliceFeed [][]byte

func (s sliceFeed) Scan(ctx context.Context, f mapreduce.Filter, fn func([]byte) error) error {
	for _, t := range s {
		if err := ctx.Err(); err != nil {
			return err
		}
		if f.Type != "" && !strings.Contains(string(t), `"type":"`+f.Type+`"`) {
			continue
		}
		if err := fn(t); err != nil {
			return err
		}
	}
	return nil
}

func transfer(h uint64, asset, from, to string, amount uint64) []byte {
	return fmt.Appendf(nil, `{"id":"%02x","height":%d,"index":0,"code":0,"status":"ok","time":%d,`+
		`"tx":{"body":{"chain_id":"dev","type":"asset/transfer","signers":[]}},`+
		`"transform":{"asset":%q,"from":%q,"to":%q,"amount":%d}}`, h, h, 1_700_000_000_000+int64(h)*1000, asset, from, to, amount)
}

func feed() sliceFeed {
	return sliceFeed{
		transfer(1, "USD", "a", "b", 5),
		transfer(2, "EUR", "b", "c", 7),
		transfer(3, "USD", "b", "a", 2),
		[]byte(`{"id":"04","height":4,"tx":{"body":{"type":"oracle/publish"}},"transform":{}}`),
	}
}

func run(t *testing.T, script string, l mapreduce.Limits) (*mapreduce.Result, error) {
	t.Helper()
	return mapreduce.Run(context.Background(), script, feed(), mapreduce.Filter{}, l)
}

func mustRun(t *testing.T, script string) *mapreduce.Result {
	t.Helper()
	res, err := run(t, script, mapreduce.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestMapReduce(t *testing.T) {
	res := mustRun(t, `
function map(tx, emit) {
  if (tx.tx.body.type !== "asset/transfer") return;
  emit(tx.transform.asset, tx.transform.amount);
}
function reduce(key, values) { return values.reduce((a, b) => a + b, 0); }`)
	got, _ := json.Marshal(res.Results)
	if string(got) != `{"EUR":7,"USD":7}` {
		t.Fatalf("results %s", got)
	}
	if res.Stats.TxsScanned != 4 || res.Stats.Emits != 3 || res.Stats.Keys != 2 {
		t.Fatalf("stats %+v", res.Stats)
	}
}

func TestNoReduceListsValuesSorted(t *testing.T) {
	res := mustRun(t, `function map(tx, emit) { emit(tx.height % 2 ? "odd" : "even", {h: tx.height}); emit(10 - tx.height, 1); }`)
	got, _ := json.Marshal(res.Results)
	want := `{"6":[1],"7":[1],"8":[1],"9":[1],"even":[{"h":2},{"h":4}],"odd":[{"h":1},{"h":3}]}`
	if string(got) != want {
		t.Fatalf("results %s, want %s", got, want)
	}
}

func TestFilterIsPassed(t *testing.T) {
	res, err := mapreduce.Run(context.Background(), `function map(tx, emit) { emit("n", 1) }
function reduce(k, v) { return v.length }`, feed(), mapreduce.Filter{Type: "oracle/publish"}, mapreduce.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Results["n"]) != "1" || res.Stats.TxsScanned != 1 {
		t.Fatalf("%s %+v", res.Results["n"], res.Stats)
	}
}

func queryErr(t *testing.T, err error, kind mapreduce.Kind) *mapreduce.Error {
	t.Helper()
	var qe *mapreduce.Error
	if !errors.As(err, &qe) {
		t.Fatalf("error %v (%T), want a *mapreduce.Error", err, err)
	}
	if qe.Kind != kind {
		t.Fatalf("error %v: kind %s, want %s", qe, qe.Kind, kind)
	}
	return qe
}

func TestEndlessLoopStoppedAtTimeLimit(t *testing.T) {
	start := time.Now()
	_, err := run(t, `function map(tx, emit) { while (true) {} }`, mapreduce.Limits{Timeout: 200 * time.Millisecond})
	qe := queryErr(t, err, mapreduce.KindLimit)
	if qe.Limit != mapreduce.LimitTime {
		t.Fatalf("limit %s", qe.Limit)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("stopped after %v", d)
	}
	// A loop at the top level, and one that catches what it can.
	_, err = run(t, `for(;;){} function map(){}`, mapreduce.Limits{Timeout: 100 * time.Millisecond})
	queryErr(t, err, mapreduce.KindLimit)
	_, err = run(t, `function map(){ for(;;){ try { for(;;){} } catch (e) {} } }`, mapreduce.Limits{Timeout: 100 * time.Millisecond})
	queryErr(t, err, mapreduce.KindLimit)
}

func TestHugeEmitStoppedAtOutputLimit(t *testing.T) {
	_, err := run(t, `function map(tx, emit) { var s = "x".repeat(1000); for (var i = 0; ; i++) { try { emit("k" + i, s) } catch (e) {} } }`,
		mapreduce.Limits{MaxOutputBytes: 1 << 20, MaxEmits: 1 << 30, Timeout: 10 * time.Second})
	qe := queryErr(t, err, mapreduce.KindLimit)
	if qe.Limit != mapreduce.LimitOutput {
		t.Fatalf("limit %s: %v", qe.Limit, qe)
	}
	_, err = run(t, `function map(tx, emit) { for (;;) emit(1, 1) }`, mapreduce.Limits{MaxEmits: 1000})
	if qe := queryErr(t, err, mapreduce.KindLimit); qe.Limit != mapreduce.LimitEmits {
		t.Fatalf("limit %s", qe.Limit)
	}
	_, err = run(t, `function map(tx, emit) { emit(1, 1) }`, mapreduce.Limits{MaxTxs: 2})
	if qe := queryErr(t, err, mapreduce.KindLimit); qe.Limit != mapreduce.LimitTxs {
		t.Fatalf("limit %s", qe.Limit)
	}
	_, err = run(t, `function f(n) { return f(n + 1) + 1 } function map(tx, emit) { f(0) }`, mapreduce.Limits{})
	if qe := queryErr(t, err, mapreduce.KindLimit); qe.Limit != mapreduce.LimitStack {
		t.Fatalf("limit %s", qe.Limit)
	}
}

func TestNoIO(t *testing.T) {
	for _, name := range []string{"require", "process", "fetch", "XMLHttpRequest", "setTimeout", "setInterval", "module", "exports", "Deno", "Bun", "globalThis.os", "readFile"} {
		res := mustRun(t, `function map(tx, emit) { emit("t", typeof `+name+`) } function reduce(k, v) { return v[0] }`)
		if string(res.Results["t"]) != `"undefined"` {
			t.Errorf("%s is %s in the sandbox", name, res.Results["t"])
		}
	}
	_, err := run(t, `var fs = require("fs"); function map() {}`, mapreduce.Limits{})
	qe := queryErr(t, err, mapreduce.KindRuntime)
	if !strings.Contains(qe.Message, "require") {
		t.Fatalf("message %q", qe.Message)
	}
}

func TestBigStringsRefused(t *testing.T) {
	for _, expr := range []string{`"x".repeat(1e9)`, `"x".padStart(1e9)`, `"x".padEnd(2e9, "y")`} {
		_, err := run(t, `function map(tx, emit) { emit(1, `+expr+`) }`, mapreduce.Limits{})
		qe := queryErr(t, err, mapreduce.KindRuntime)
		if !strings.Contains(qe.Message, "above the query's bound") {
			t.Fatalf("%s: %q", expr, qe.Message)
		}
	}
	res := mustRun(t, `function map(tx, emit) { emit(1, "ab".repeat(3) + "x".padStart(3, "-")) } function reduce(k, v) { return v[0] }`)
	if string(res.Results["1"]) != `"ababab--x"` {
		t.Fatalf("%s", res.Results["1"])
	}
}

func TestErrors(t *testing.T) {
	_, err := run(t, "function map(tx, emit) {\n  emit(1,\n}", mapreduce.Limits{})
	qe := queryErr(t, err, mapreduce.KindSyntax)
	if qe.Line != 3 || qe.Column == 0 {
		t.Fatalf("syntax error at %d:%d: %v", qe.Line, qe.Column, qe)
	}
	_, err = run(t, `function mapper(tx, emit) {}`, mapreduce.Limits{})
	queryErr(t, err, mapreduce.KindNoMap)
	_, err = run(t, `function map(tx, emit) { if (tx.height == 3) throw new Error("bad height " + tx.height) }`, mapreduce.Limits{})
	qe = queryErr(t, err, mapreduce.KindRuntime)
	if !strings.Contains(qe.Message, "bad height 3") {
		t.Fatalf("message %q", qe.Message)
	}
	_, err = run(t, `function map(tx, emit) { emit(1, 1) } function reduce(k, v) { return v.nope.length }`, mapreduce.Limits{})
	qe = queryErr(t, err, mapreduce.KindRuntime)
	if !strings.Contains(qe.Message, "TypeError") {
		t.Fatalf("message %q", qe.Message)
	}
}

func TestConsoleLogBounded(t *testing.T) {
	res, err := run(t, `function map(tx, emit) { console.log("tx", tx.height) }`, mapreduce.Limits{MaxLogs: 3})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Logs, ",") != "tx 1,tx 2,tx 3" || res.LogsDropped != 1 {
		t.Fatalf("logs %q dropped %d", res.Logs, res.LogsDropped)
	}
}

func TestCap(t *testing.T) {
	l := mapreduce.Limits{Timeout: time.Hour, MaxTxs: 5}.Cap(mapreduce.Limits{Timeout: time.Second})
	if l.Timeout != time.Second || l.MaxTxs != 5 || l.MaxEmits != mapreduce.DefaultMaxEmits {
		t.Fatalf("%+v", l)
	}
}

func TestTxIsAPlainObject(t *testing.T) {
	res := mustRun(t, `function map(tx, emit) {
  if (tx.height != 1) return;
  emit("keys", Object.keys(tx).sort().join(","));
  emit("signers", tx.tx.body.signers.map(s => s).length);
  emit("json", JSON.stringify(tx.transform));
  tx.extra = 1; emit("set", tx.extra);
  emit("order", JSON.stringify({t: tx.transform, s: tx.tx.body}));
  var ks = []; for (var k in tx.transform) ks.push(k); emit("forin", ks.join(","));
  delete tx.transform.asset; emit("deleted", "asset" in tx.transform);
}
function reduce(k, v) { return v[0] }`)
	got, _ := json.Marshal(res.Results)
	want := `{"json":"{\"amount\":5,\"asset\":\"USD\",\"from\":\"a\",\"to\":\"b\"}","keys":"code,height,id,index,status,time,transform,tx","set":1,"signers":0}`
	want = `{"deleted":false,"forin":"amount,asset,from,to",` + want[1:]
	want = strings.Replace(want, `"set"`, `"order":"{\"t\":{\"amount\":5,\"asset\":\"USD\",\"from\":\"a\",\"to\":\"b\"},\"s\":{\"chain_id\":\"dev\",\"signers\":[],\"type\":\"asset/transfer\"}}","set"`, 1)
	if string(got) != want {
		t.Fatalf("results %s\nwant %s", got, want)
	}
}
