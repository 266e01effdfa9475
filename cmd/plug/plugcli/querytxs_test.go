package plugcli

import (
	"testing"
)

// checkQueryTxs runs plug query txs against TestNodeE2E's node, where bob
// received an issue of USD, sent a transfer and signed a failed one.
func checkQueryTxs(t *testing.T, env, node []string) {
	t.Helper()
	kb := []string{"--keyring-backend", "test"}
	var page struct {
		Txs []struct {
			ID        string `json:"id"`
			Height    uint64 `json:"height"`
			Status    string `json:"status"`
			BlockTime int64  `json:"block_time"`
			BlockHash string `json:"block_hash"`
		} `json:"txs"`
		Next     string `json:"next"`
		Verified bool   `json:"verified"`
	}
	q := func(args ...string) {
		t.Helper()
		page.Txs, page.Next, page.Verified = nil, "", false
		ok(t, &page, env, append(append(append([]string{"query", "txs", "-o", "json"}, args...), node...), kb...)...)
	}
	// bob's transactions so far: transfers to and from him, one of which fails.
	q("--account", "bob")
	failed := 0
	for i, tx := range page.Txs {
		if tx.Status == "failed" {
			failed++
		}
		if i > 0 && tx.Height < page.Txs[i-1].Height {
			t.Fatalf("bob's transactions out of height order: %+v", page)
		}
	}
	all := len(page.Txs)
	if all < 3 || failed != 1 {
		t.Fatalf("bob's transactions: %+v", page)
	}
	q("--account", "bob", "--asset", "USD", "--type", "asset/transfer", "--prove")
	if len(page.Txs) < 2 || len(page.Txs) >= all || !page.Verified || page.Txs[0].BlockHash == "" || page.Txs[0].BlockTime == 0 {
		t.Fatalf("bob's USD transfers with proofs (of %d transactions): %+v", all, page)
	}
	q("--asset", "USD", "--limit", "1")
	if len(page.Txs) != 1 || page.Next == "" {
		t.Fatalf("first page of USD: %+v", page)
	}
	first := page.Txs[0].ID
	q("--asset", "USD", "--limit", "1", "--after", page.Next)
	if len(page.Txs) != 1 || page.Txs[0].ID == first {
		t.Fatalf("second page of USD: %+v", page)
	}
	q("--asset", "EUR", "--from", "1", "--to", "2026-01-01T00:00:00Z")
	if len(page.Txs) != 0 {
		t.Fatalf("EUR: %+v", page)
	}
	fails(t, "want a height or an RFC 3339 time", env, append([]string{"query", "txs", "--from", "yesterday"}, node...)...)
	fails(t, "cursor", env, append([]string{"query", "txs", "--after", "nope"}, node...)...)
}

// checkReindex rebuilds the stopped node's index.
func checkReindex(t *testing.T, env []string, home string) {
	t.Helper()
	var out reindexOut
	ok(t, &out, env, "node", "reindex", "--home", home, "-o", "json")
	if out.Heights == 0 || out.Bytes == 0 {
		t.Fatalf("reindex: %+v", out)
	}
}
