package mapreduce_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/mapreduce"
)

// BenchmarkMapReduce1M runs a net-position query (per asset and party) over
// 1,000,000 synthetic transfer transactions fed in-process, each a JSON
// object shaped as the node feeds it, to measure the engine: JSON.parse, map,
// emit, reduce. Reported: txs/s.
func BenchmarkMapReduce1M(b *testing.B) {
	const n = 1_000_000
	assets := []string{"USD", "EUR", "GBP", "JPY"}
	parties := make([]string, 50)
	for i := range parties {
		parties[i] = fmt.Sprintf("%040x", i*7919)
	}
	txs := make([][]byte, n)
	for i := range txs {
		txs[i] = fmt.Appendf(nil, `{"id":"%064x","height":%d,"index":%d,"code":0,"status":"ok",`+
			`"tx":{"body":{"chain_id":"alpha","type":"asset/transfer","payload":"pGVhc3NldGNVU0Q=",`+
			`"signers":[{"key":{"scheme":"ed25519","key":"y3MAbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd="},"nonce":%d}]},`+
			`"proofs":[{"signature":"q0AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdAbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd=="}]},`+
			`"time":%d,"time_rfc3339":"2026-12-04T15:00:00Z",`+
			`"transform":{"asset":%q,"from":%q,"to":%q,"amount":%d}}`,
			i, i/100+1, i%100, i, 1_780_000_000_000+int64(i), assets[i%len(assets)],
			parties[i%len(parties)], parties[(i*31+7)%len(parties)], i%1000+1)
	}
	feed := mapreduce.FeedFunc(func(ctx context.Context, _ mapreduce.Filter, fn func([]byte) error) error {
		for _, t := range txs {
			if err := fn(t); err != nil {
				return err
			}
		}
		return nil
	})
	script := `
function map(tx, emit) {
  if (tx.status !== "ok" || tx.tx.body.type !== "asset/transfer") return;
  var t = tx.transform;
  emit(t.asset + "/" + t.from, -t.amount);
  emit(t.asset + "/" + t.to, t.amount);
}
function reduce(key, values) { var s = 0; for (var i = 0; i < values.length; i++) s += values[i]; return s; }`
	limits := mapreduce.Limits{Timeout: 10 * time.Minute, MaxTxs: n, MaxEmits: 2 * n, MaxOutputBytes: 1 << 30}
	cpu0 := cpuTime()
	b.ResetTimer()
	var scanned int
	for b.Loop() {
		res, err := mapreduce.Run(context.Background(), script, feed, mapreduce.Filter{}, limits)
		if err != nil {
			b.Fatal(err)
		}
		if res.Stats.TxsScanned != n || len(res.Results) != len(assets)*len(parties) {
			b.Fatalf("stats %+v, %d keys", res.Stats, len(res.Results))
		}
		scanned += n
	}
	b.ReportMetric(float64(scanned)/b.Elapsed().Seconds(), "txs/s")
	// On a shared machine the wall-clock rate moves with the other jobs; the
	// process's CPU time (all threads, GC included) does less.
	b.ReportMetric(float64(scanned)/(cpuTime()-cpu0).Seconds(), "txs/cpu-s")
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
