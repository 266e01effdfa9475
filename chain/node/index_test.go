package node

import (
	"bytes"
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/builtin"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/index"
	"github.com/plugchain/plug/chain/transform"
)

func scanIDs(t *testing.T, n *Node, f TxFilter) []hash.Hash {
	t.Helper()
	var out []hash.Hash
	err := n.ScanTxs(context.Background(), f, func(h TxHit) bool {
		out = append(out, h.Result.ID)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tailIDs is scanIDs through the block store alone, as ScanTxs reads the
// heights the index writer has not reached.
func tailIDs(t *testing.T, n *Node, f TxFilter) []hash.Hash {
	t.Helper()
	var out []hash.Hash
	to := n.height()
	if f.To != 0 {
		to = min(to, f.To)
	}
	err := n.scanUnindexed(context.Background(), f, max(f.From, 1), to, func(h TxHit) bool {
		out = append(out, h.Result.ID)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func acctTerm(a crypto.Address) transform.Term { return transform.AccountTerm(a) }

func dumpIndex(t *testing.T, path string) []byte {
	t.Helper()
	x, err := index.Open(path, index.WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	var buf bytes.Buffer
	if err := x.Dump(func(k, v []byte) { buf.Write(k); buf.WriteByte('='); buf.Write(v); buf.WriteByte('\n') }); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestIndexQueries commits transfers to two accounts and finds them by
// account, asset, type and heights, pages through them, checks the
// inclusion proofs, then rebuilds the index from the block store and
// compares it with the one built as blocks committed.
func TestIndexQueries(t *testing.T) {
	tn := newTestNet(t, 1)
	tn.waitHeight(0, 1, 10*time.Second)
	n := tn.nodes[0]
	admin := tn.admin.Public().Address()
	bob, carol := seedKey(t, 71).Public().Address(), seedKey(t, 72).Public().Address()
	var toBob, toCarol, all []hash.Hash
	for nonce := uint64(0); nonce < 8; nonce++ {
		to := bob
		if nonce%3 == 2 {
			to = carol
		}
		id, err := n.Submit(context.Background(), tn.transfer(nonce, to, 1+nonce))
		if err != nil {
			t.Fatal(err)
		}
		if to == bob {
			toBob = append(toBob, id)
		} else {
			toCarol = append(toCarol, id)
		}
		all = append(all, id)
		if nonce%2 == 1 {
			tn.waitTx(0, id, 10*time.Second) // spread them over several blocks
		}
	}
	tn.waitTx(0, all[len(all)-1], 10*time.Second)
	waitIndexed(t, n, n.height(), 10*time.Second)
	// Positions give the expected order.
	pos := func(ids []hash.Hash) []hash.Hash {
		out := slices.Clone(ids)
		slices.SortFunc(out, func(a, b hash.Hash) int {
			ra, _ := n.TxResult(context.Background(), a)
			rb, _ := n.TxResult(context.Background(), b)
			return cmpPos(ra.Height, ra.Index, rb.Height, rb.Index)
		})
		return out
	}
	toBob, toCarol, all = pos(toBob), pos(toCarol), pos(all)
	check := func(name string, f TxFilter, want []hash.Hash) {
		t.Helper()
		if got := scanIDs(t, n, f); !slices.Equal(got, want) {
			t.Errorf("%s: got %d txs %v, want %d %v", name, len(got), got, len(want), want)
		}
		if got := tailIDs(t, n, f); !slices.Equal(got, want) {
			t.Errorf("%s, read from the block store: got %d txs %v, want %d %v", name, len(got), got, len(want), want)
		}
	}
	check("account bob", TxFilter{Terms: []transform.Term{acctTerm(bob)}}, toBob)
	check("account carol", TxFilter{Terms: []transform.Term{acctTerm(carol)}}, toCarol)
	check("account admin (signer)", TxFilter{Terms: []transform.Term{acctTerm(admin)}}, all)
	check("asset STAKE", TxFilter{Terms: []transform.Term{{Kind: transform.TermAsset, Value: "STAKE"}}}, all)
	check("type", TxFilter{Terms: []transform.Term{{Kind: transform.TermType, Value: "asset/transfer"}}}, all)
	check("bob and carol", TxFilter{Terms: []transform.Term{acctTerm(bob), acctTerm(carol)}}, nil)
	check("asset other", TxFilter{Terms: []transform.Term{{Kind: transform.TermAsset, Value: "OTHER"}}}, nil)
	check("bob and STAKE", TxFilter{Terms: []transform.Term{acctTerm(bob), {Kind: transform.TermAsset, Value: "STAKE"}}}, toBob)

	// Height and time ranges: the heights of the first and last transfer.
	first, _ := n.TxResult(context.Background(), all[0])
	last, _ := n.TxResult(context.Background(), all[len(all)-1])
	if first.Height == last.Height {
		t.Fatal("all transfers in one block; the range checks need several")
	}
	var inFirst []hash.Hash
	for _, id := range all {
		if r, _ := n.TxResult(context.Background(), id); r.Height == first.Height {
			inFirst = append(inFirst, id)
		}
	}
	check("height of the first", TxFilter{Terms: []transform.Term{acctTerm(admin)}, From: first.Height, To: first.Height}, inFirst)
	check("after the first block", TxFilter{From: first.Height + 1, Terms: []transform.Term{acctTerm(admin)}}, all[len(inFirst):])
	// No terms: every transaction of the heights (the node commits only ours).
	check("heights, no terms", TxFilter{From: first.Height, To: last.Height}, all)
	hdr, _, err := n.Header(first.Height)
	if err != nil {
		t.Fatal(err)
	}
	check("time of the first block", TxFilter{Terms: []transform.Term{acctTerm(admin)}, FromTime: hdr.Time, ToTime: hdr.Time}, inFirst)

	// Paging through QueryTxs with its cursor, with proofs.
	var paged []hash.Hash
	q := gateway.TxQuery{Terms: []transform.Term{acctTerm(admin)}, Limit: 3, Prove: true}
	for pages := 0; ; pages++ {
		page, err := n.QueryTxs(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Txs {
			paged = append(paged, it.ID)
			h, _, err := n.Header(it.Height)
			if err != nil {
				t.Fatal(err)
			}
			if h.Hash() != it.BlockHash || h.Time != it.BlockTime {
				t.Fatalf("item at %d: block hash or time is not the header's", it.Height)
			}
			if err := it.Proof.Verify(h.TxRoot, it.ID); err != nil {
				t.Fatalf("proof of %s: %v", it.ID.Short(), err)
			}
		}
		if page.Next == "" {
			break
		}
		if len(page.Txs) != 3 || pages > 10 {
			t.Fatalf("page %d of %d items with a next cursor", pages, len(page.Txs))
		}
		p, err := gateway.ParseCursor(page.Next)
		if err != nil {
			t.Fatal(err)
		}
		q.After = &p
	}
	if !slices.Equal(paged, all) {
		t.Fatalf("paged %v, want %v", paged, all)
	}

	// Rebuild: stop the node, keep the index built as blocks committed,
	// rebuild it from the block store and compare.
	home := tn.homes[0]
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	tn.nodes[0] = nil
	path := home + "/" + IndexFile
	built := dumpIndex(t, path)
	var calls int
	if err := Reindex(home, builtin.Registry(), tn.gen.ChainID, 0, func(done, total uint64) { calls++ }); err != nil {
		t.Fatal(err)
	}
	if calls == 0 {
		t.Error("reindex reported no progress")
	}
	if rebuilt := dumpIndex(t, path); !bytes.Equal(built, rebuilt) {
		t.Fatalf("rebuilt index differs from the one built at commit (%d and %d bytes of dump)", len(built), len(rebuilt))
	}
	// Retention: a rebuild keeping the last 2 heights holds only those.
	if err := Reindex(home, builtin.Registry(), tn.gen.ChainID, 2, nil); err != nil {
		t.Fatal(err)
	}
	x, err := index.Open(path, index.WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	if x.Height()-x.Low()+1 != 2 {
		t.Errorf("index keeps heights %d-%d, want the last 2", x.Low(), x.Height())
	}
	x.Close()

	// A node started without its index.db builds it again on start.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	tn.start(0)
	if got := scanIDs(t, tn.nodes[0], TxFilter{Terms: []transform.Term{acctTerm(admin)}}); !slices.Equal(got, all) {
		t.Fatalf("after a start without index.db: %d txs, want %d", len(got), len(all))
	}
}

func cmpPos(h1 uint64, i1 uint32, h2 uint64, i2 uint32) int {
	switch {
	case h1 != h2:
		if h1 < h2 {
			return -1
		}
		return 1
	case i1 < i2:
		return -1
	case i1 > i2:
		return 1
	}
	return 0
}

// waitIndexed waits until n's index writer, which runs behind the commits,
// has indexed height h.
func waitIndexed(t *testing.T, n *Node, h uint64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for n.index.Height() < h {
		if time.Now().After(deadline) {
			t.Fatalf("index at height %d after %s, want %d", n.index.Height(), d, h)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
