package index

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/transform"
)

func acct(i int) transform.Term {
	return transform.Term{Kind: transform.TermAccount, Value: fmt.Sprintf("%040x", i)}
}
func asset(s string) transform.Term { return transform.Term{Kind: transform.TermAsset, Value: s} }
func typ(s string) transform.Term   { return transform.Term{Kind: transform.TermType, Value: s} }

// synth returns block h of a synthetic chain: txs transfers, tx i from account
// (h*txs+i)%accounts to the next, asset "a<i%3>", time 1000*h.
func synth(h uint64, txs, accounts int) *Block {
	b := &Block{Height: h, Time: int64(1000 * h)}
	for i := range txs {
		from := (int(h)*txs + i) % accounts
		b.Txs = append(b.Txs, []transform.Term{typ("asset/transfer"), acct(from), acct(from), acct((from + 1) % accounts),
			asset(fmt.Sprintf("a%d", i%3))})
	}
	return b
}

// naive is the reference answer of f over blocks.
func naive(blocks []*Block, f Filter) []Pos {
	var out []Pos
	for _, b := range blocks {
		if f.From != 0 && b.Height < f.From || f.To != 0 && b.Height > f.To ||
			f.FromTime != 0 && b.Time < f.FromTime || f.ToTime != 0 && b.Time > f.ToTime {
			continue
		}
	tx:
		for i, terms := range b.Txs {
			p := Pos{b.Height, uint32(i)}
			if f.After != nil && !f.After.Less(p) {
				continue
			}
			for _, t := range f.Terms {
				if !slices.Contains(terms, t) {
					continue tx
				}
			}
			out = append(out, p)
		}
	}
	return out
}

func scan(t *testing.T, x *Index, f Filter) []Pos {
	t.Helper()
	var out []Pos
	if err := x.Scan(f, func(p Pos, _ int64) bool { out = append(out, p); return true }); err != nil {
		t.Fatal(err)
	}
	return out
}

func open(t testing.TB) *Index {
	x, err := Open(filepath.Join(t.TempDir(), "index.db"), WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

func TestKeyOrder(t *testing.T) {
	a := acct(1)
	k1, k2, k3 := Key(a, Pos{1, 5}), Key(a, Pos{2, 0}), Key(a, Pos{2, 1})
	if bytes.Compare(k1, k2) >= 0 || bytes.Compare(k2, k3) >= 0 {
		t.Fatal("keys of a term are not in height, index order")
	}
	if !bytes.HasPrefix(k1, Prefix(a)) || len(k1) != len(Prefix(a))+12 {
		t.Fatal("key is not prefix + 12 bytes")
	}
	// A value that extends another is not under its prefix.
	if bytes.HasPrefix(Key(asset("ab"), Pos{1, 0}), Prefix(asset("a"))) {
		t.Fatal("prefix of asset a covers asset ab")
	}
	if Indexable(transform.Term{Kind: "account", Value: string(make([]byte, 256))}) || Indexable(transform.Term{Value: "x"}) {
		t.Fatal("unindexable term accepted")
	}
	// Hex accounts are stored as bytes, upper or lower case alike; other
	// account values and other kinds keep their text and do not collide.
	if len(Key(a, Pos{})) != 1+1+20+12 {
		t.Fatalf("account key of %d bytes", len(Key(a, Pos{})))
	}
	up := transform.Term{Kind: transform.TermAccount, Value: "00000000000000000000000000000000000000AB"}
	lo := transform.Term{Kind: transform.TermAccount, Value: "00000000000000000000000000000000000000ab"}
	if !bytes.Equal(Prefix(up), Prefix(lo)) {
		t.Fatal("hex case matters")
	}
	odd := transform.Term{Kind: transform.TermAccount, Value: "bob"}
	other := transform.Term{Kind: "custom", Value: "bob"}
	if bytes.Equal(Prefix(odd), Prefix(other)) || bytes.HasPrefix(Prefix(odd), Prefix(lo)) {
		t.Fatal("prefixes collide")
	}
}

func TestScanMatchesNaive(t *testing.T) {
	x := open(t)
	var blocks []*Block
	for h := uint64(1); h <= 60; h++ {
		b := synth(h, int(h%7), 10)
		blocks = append(blocks, b)
		if err := x.Add(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.Add(synth(70, 1, 10)); !errors.Is(err, ErrHeight) {
		t.Fatalf("add out of order: %v", err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		var f Filter
		for range rng.IntN(3) {
			switch rng.IntN(3) {
			case 0:
				f.Terms = append(f.Terms, acct(rng.IntN(11)))
			case 1:
				f.Terms = append(f.Terms, asset(fmt.Sprintf("a%d", rng.IntN(4))))
			default:
				f.Terms = append(f.Terms, typ("asset/transfer"))
			}
		}
		if rng.IntN(2) == 0 {
			f.From = uint64(rng.IntN(70))
		}
		if rng.IntN(2) == 0 {
			f.To = uint64(rng.IntN(70))
		}
		if rng.IntN(3) == 0 {
			f.FromTime = int64(rng.IntN(70000))
		}
		if rng.IntN(3) == 0 {
			f.ToTime = int64(rng.IntN(70000))
		}
		if rng.IntN(3) == 0 {
			f.After = &Pos{uint64(rng.IntN(60)), uint32(rng.IntN(8))}
		}
		got, want := scan(t, x, f), naive(blocks, f)
		if !slices.Equal(got, want) {
			t.Fatalf("filter %+v: got %v, want %v", f, got, want)
		}
	}
	// Paging with After returns every answer once, in order.
	f := Filter{Terms: []transform.Term{asset("a1")}}
	all := naive(blocks, f)
	var paged []Pos
	for {
		var page []Pos
		_ = x.Scan(f, func(p Pos, _ int64) bool { page = append(page, p); return len(page) < 4 })
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		last := page[len(page)-1]
		f.After = &last
	}
	if !slices.Equal(paged, all) {
		t.Fatalf("paged %v, want %v", paged, all)
	}
}

func TestPruneAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	x, err := Open(path, WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	var blocks []*Block
	for h := uint64(5); h <= 10; h++ {
		b := synth(h, 3, 4)
		blocks = append(blocks, b)
		if err := x.Add(b); err != nil {
			t.Fatal(err)
		}
	}
	if x.Low() != 5 || x.Height() != 10 {
		t.Fatalf("low %d height %d", x.Low(), x.Height())
	}
	if err := x.Prune(blocks[1]); !errors.Is(err, ErrHeight) {
		t.Fatalf("prune above low: %v", err)
	}
	if err := x.Prune(blocks[0]); err != nil {
		t.Fatal(err)
	}
	x.Close()
	if x, err = Open(path, WithNoSync()); err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if x.Low() != 6 || x.Height() != 10 {
		t.Fatalf("after reopen: low %d height %d", x.Low(), x.Height())
	}
	if got, want := scan(t, x, Filter{Terms: []transform.Term{acct(1)}}), naive(blocks[1:], Filter{Terms: []transform.Term{acct(1)}}); !slices.Equal(got, want) {
		t.Fatalf("after prune: %v, want %v", got, want)
	}
	n := 0
	_ = x.Dump(func(k, _ []byte) {
		if bytes.Contains(k, u64(5)) && bytes.HasPrefix(k, bucketTerms) {
			n++
		}
	})
	if n != 0 {
		t.Fatalf("%d keys of the pruned block left", n)
	}
}

// BenchmarkLookup builds an index of 1,000,000 synthetic transfers (1,000
// blocks of 1,000; 10,000 accounts; 5 terms each: type, signer, from, to,
// asset) and looks up one account's transactions (about 200 each), a page of
// 100 of one account and one asset, and one height range.
func BenchmarkLookup(b *testing.B) {
	const blocks, perBlock, accounts = 1000, 1000, 10_000
	dir := b.TempDir()
	x, err := Open(filepath.Join(dir, "index.db"), WithNoSync())
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	batch := []*Block{}
	start := time.Now()
	for h := uint64(1); h <= blocks; h++ {
		batch = append(batch, synth(h, perBlock, accounts))
		if len(batch) == 20 {
			if err := x.Add(batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	st, err := os.Stat(filepath.Join(dir, "index.db"))
	if err != nil {
		b.Fatal(err)
	}
	perTx := float64(st.Size()) / float64(blocks*perBlock)
	buildRate := float64(blocks*perBlock) / time.Since(start).Seconds()
	rng := rand.New(rand.NewPCG(3, 4))
	b.Run("account", func(b *testing.B) {
		found := 0
		for b.Loop() {
			_ = x.Scan(Filter{Terms: []transform.Term{acct(rng.IntN(accounts))}}, func(Pos, int64) bool { found++; return true })
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
		b.ReportMetric(perTx, "index-bytes/tx")
		b.ReportMetric(buildRate, "build-tx/s")
		b.ReportMetric(float64(found)/float64(b.N), "txs/lookup")
	})
	b.Run("account+asset-page100", func(b *testing.B) {
		found := 0
		for b.Loop() {
			n := 0
			_ = x.Scan(Filter{Terms: []transform.Term{acct(rng.IntN(accounts)), asset("a1")}}, func(Pos, int64) bool { n++; return n < 100 })
			found += n
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
		b.ReportMetric(perTx, "index-bytes/tx")
		b.ReportMetric(float64(found)/float64(b.N), "txs/lookup")
	})
	b.Run("type+heights-page100", func(b *testing.B) {
		for b.Loop() {
			h := uint64(1 + rng.IntN(blocks))
			n := 0
			_ = x.Scan(Filter{Terms: []transform.Term{typ("asset/transfer")}, From: h, To: h + 10}, func(Pos, int64) bool { n++; return n < 100 })
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
		b.ReportMetric(perTx, "index-bytes/tx")
	})
}
