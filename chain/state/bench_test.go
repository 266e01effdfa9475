package state

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

const benchKeys = 1_000_000

var bench struct {
	once sync.Once
	dir  string
	s    *Store
	next int // next fresh key index
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bench.s != nil {
		bench.s.Close()
		os.RemoveAll(bench.dir)
	}
	os.Exit(code)
}

func benchValue(i, v int) []byte { return fmt.Appendf(nil, "balance:%016d:%08d", i, v) }

// benchState builds, once per test binary, a store holding benchKeys keys in one
// Stage+Commit with fsync off, then turns fsync back on for what is measured.
func benchState(b *testing.B) *Store {
	bench.once.Do(func() {
		bench.dir, bench.err = os.MkdirTemp("", "plug-state-bench")
		if bench.err != nil {
			return
		}
		s, err := Open(filepath.Join(bench.dir, "state.db"), WithNoSync())
		if err != nil {
			bench.err = err
			return
		}
		start := time.Now()
		ch := make([]Change, benchKeys)
		for i := range ch {
			ch[i] = Change{Key: fmt.Sprintf("acct/%08d", i), Value: benchValue(i, 0)}
		}
		batch, err := s.Stage(ch)
		if err != nil {
			bench.err = err
			return
		}
		staged := time.Since(start)
		if bench.err = s.Commit(batch); bench.err != nil {
			return
		}
		if bench.err = s.db.Sync(); bench.err != nil {
			return
		}
		s.db.NoSync = false // measured commits are durable
		s.db.NoGrowSync = false
		fi, _ := os.Stat(filepath.Join(bench.dir, "state.db"))
		b.Logf("setup: %d keys staged in %v, committed in %v total; file %d MiB",
			benchKeys, staged.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), fi.Size()>>20)
		bench.s, bench.next = s, benchKeys
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.s
}

// BenchmarkStateCommit times Stage+Commit of 10,000 changed keys (9,000 updates of
// existing keys, 1,000 inserts) on a 1,000,000-key state, with fsync on.
func BenchmarkStateCommit(b *testing.B) {
	s := benchState(b)
	rng := rand.New(rand.NewPCG(1, 1))
	const changed = 10_000
	var keys int
	var nodes int
	for b.Loop() {
		b.StopTimer()
		ch := make([]Change, 0, changed)
		v := int(s.Version())
		for i := 0; i < changed*9/10; i++ {
			k := rng.IntN(bench.next)
			ch = append(ch, Change{Key: fmt.Sprintf("acct/%08d", k), Value: benchValue(k, v)})
		}
		for i := 0; i < changed/10; i++ {
			ch = append(ch, Change{Key: fmt.Sprintf("acct/%08d", bench.next), Value: benchValue(bench.next, v)})
			bench.next++
		}
		b.StartTimer()
		batch, err := s.Stage(ch)
		if err != nil {
			b.Fatal(err)
		}
		nodes += batch.nodes.n
		if err := s.Commit(batch); err != nil {
			b.Fatal(err)
		}
		keys += changed
	}
	b.ReportMetric(float64(keys)/b.Elapsed().Seconds(), "keys/s")
	b.ReportMetric(float64(nodes)/float64(b.N), "nodes/commit")
}

// BenchmarkProve measures proof generation on the 1,000,000-key state and the
// proof's size in canonical CBOR.
func BenchmarkProve(b *testing.B) {
	s := benchState(b)
	enc, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	v := s.Version()
	var size, n, sibs int
	for b.Loop() {
		key := fmt.Sprintf("acct/%08d", rng.IntN(bench.next+bench.next/10)) // ~10% absent
		_, _, p, err := s.Prove(v, key)
		if err != nil {
			b.Fatal(err)
		}
		raw, err := enc.Marshal(p)
		if err != nil {
			b.Fatal(err)
		}
		size += len(raw)
		sibs += len(p.Siblings)
		n++
	}
	b.ReportMetric(float64(size)/float64(n), "proof-bytes")
	b.ReportMetric(float64(sibs)/float64(n), "siblings")
}

// BenchmarkGet is the O(1) latest read from the flat bucket.
func BenchmarkGet(b *testing.B) {
	s := benchState(b)
	rng := rand.New(rand.NewPCG(3, 3))
	for b.Loop() {
		if _, _, err := s.Get(fmt.Sprintf("acct/%08d", rng.IntN(benchKeys))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetAt reads through the tree of the first (1,000,000-key) version.
func BenchmarkGetAt(b *testing.B) {
	s := benchState(b)
	rng := rand.New(rand.NewPCG(4, 4))
	for b.Loop() {
		if _, _, err := s.GetAt(1, fmt.Sprintf("acct/%08d", rng.IntN(benchKeys))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIterateAt reads the whole benchKeys state: at the latest version (a
// scan of the flat bucket) and at an older one (every key looked up in that
// version's tree), as a state export does. One op is the whole state.
func BenchmarkIterateAt(b *testing.B) {
	s := benchState(b)
	if s.Version() < 2 {
		ch := make([]Change, 0, 1010)
		for i := range 1000 {
			ch = append(ch, Change{Key: fmt.Sprintf("acct/%08d", i*997), Value: benchValue(i, 1)})
		}
		for i := range 10 {
			ch = append(ch, Change{Key: fmt.Sprintf("acct/%08d", i*7+1), Delete: true})
		}
		batch, err := s.Stage(ch)
		if err == nil {
			err = s.Commit(batch)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		version uint64
	}{{"latest", s.Version()}, {"old", s.Version() - 1}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				n := 0
				if err := s.IterateAt(tc.version, "", func(string, []byte) error { n++; return nil }); err != nil {
					b.Fatal(err)
				}
				if n < benchKeys-100 {
					b.Fatalf("%d keys", n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchKeys, "ns/key")
		})
	}
}
