package plugcli

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/plugchain/plug/testnet"
)

// TestMapReduceE2E runs map-reduce queries on a real testnet: transfers made
// through the CLI are summed per asset and per recipient by `plug query
// mapreduce`, and the sums equal what the balances moved; an endless loop is
// stopped at the time limit with a clear error while the node keeps answering
// and committing blocks.
func TestMapReduceE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("real-process testnet")
	}
	tn := t.TempDir()
	var up struct {
		Chains []struct {
			Nodes []struct {
				HTTP string `json:"http"`
			} `json:"nodes"`
		} `json:"chains"`
	}
	ok(t, &up, nil, "testnet", "up", "--dir", tn, "--validators", "1", "--detach", "-o", "json")
	t.Cleanup(func() { plug(t, nil, "testnet", "down", "--dir", tn) })
	node := up.Chains[0].Nodes[0].HTTP

	var bob keyOut
	ok(t, &bob, nil, "keys", "show", "bob", "--keyring-dir", filepath.Join(tn, testnet.KeyringDir), "--keyring-backend", "test", "-o", "json")
	type balance struct {
		Balance uint64 `json:"balance"`
	}
	var before balance
	ok(t, &before, nil, "query", "balance", "--testnet", tn, "--account", "bob", "--asset", "USD", "-o", "json")
	var sent uint64
	for _, amt := range []uint64{7, 11, 25, 3} {
		var tx struct{ Status string }
		ok(t, &tx, nil, "tx", "transfer", "--testnet", tn, "--from", "alice", "--to", "bob", "--asset", "USD",
			"--amount", strconv.FormatUint(amt, 10), "--wait", "-o", "json")
		if tx.Status != "ok" {
			t.Fatalf("transfer: %+v", tx)
		}
		sent += amt
	}
	var after balance
	ok(t, &after, nil, "query", "balance", "--testnet", tn, "--account", "bob", "--asset", "USD", "-o", "json")
	if after.Balance-before.Balance != sent {
		t.Fatalf("bob's USD moved by %d, want %d", after.Balance-before.Balance, sent)
	}

	dir := t.TempDir()
	sum := filepath.Join(dir, "sum.js")
	if err := os.WriteFile(sum, []byte(`
function map(tx, emit) {
  if (tx.status !== "ok") return;
  emit(tx.transform.asset, tx.transform.amount);
  emit("to:" + tx.transform.to + ":" + tx.transform.asset, tx.transform.amount);
}
function reduce(key, values) { return values.reduce((a, b) => a + b, 0); }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	var res struct {
		Results map[string]uint64 `json:"results"`
		Stats   struct {
			TxsScanned int     `json:"txs_scanned"`
			ElapsedMS  float64 `json:"elapsed_ms"`
		} `json:"stats"`
	}
	ok(t, &res, nil, "query", "mapreduce", "--testnet", tn, "--file", sum, "--type", "asset/transfer", "--asset", "USD", "-o", "json")
	if res.Results["USD"] != sent || res.Results["to:"+bob.Address+":USD"] != after.Balance-before.Balance {
		t.Fatalf("query sums %v, want USD %d, to bob %d", res.Results, sent, after.Balance-before.Balance)
	}
	if res.Stats.TxsScanned != 4 {
		t.Fatalf("scanned %d transactions, want the 4 transfers", res.Stats.TxsScanned)
	}
	// Signed by bob: none of the transfers.
	res.Results = nil
	ok(t, &res, nil, "query", "mapreduce", "--testnet", tn, "--file", sum, "--account", "bob", "-o", "json")
	if len(res.Results) != 0 {
		t.Fatalf("transfers signed by bob: %v", res.Results)
	}

	loop := filepath.Join(dir, "loop.js")
	if err := os.WriteFile(loop, []byte("function map(tx, emit) { while (true) {} }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Height uint64 `json:"height"`
	}
	ok(t, &st, nil, "query", "status", "--testnet", tn, "-o", "json")
	h0 := st.Height
	start := time.Now()
	fails(t, "query limit timeout reached", nil, "query", "mapreduce", "--testnet", tn, "--file", loop, "-o", "json")
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the endless loop took %v to stop", d)
	}
	bad := filepath.Join(dir, "bad.js")
	if err := os.WriteFile(bad, []byte("function map(tx, emit) {\n  emit(1,\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fails(t, "line 3", nil, "query", "mapreduce", "--testnet", tn, "--file", bad)

	resp, err := http.Get(node + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz after the endless loop: %s", resp.Status)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok(t, &st, nil, "query", "status", "--testnet", tn, "-o", "json")
		if st.Height > h0+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no block committed after the endless loop: height %d, was %d", st.Height, h0)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
