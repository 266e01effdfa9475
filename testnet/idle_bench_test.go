package testnet_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plugchain/plug/chain/store"
	"github.com/plugchain/plug/testnet"
)

// BenchmarkIdleTestnet measures what a two-chain testnet (4 validators each and
// a relay) costs when nobody uses it: blocks per second per chain (the
// heartbeat) and the growth of its bbolt files in bytes of pages in use,
// extrapolated to an hour. The window is PLUG_IDLE_WINDOW seconds (default 120).
//
//	go test ./testnet -run '^$' -bench IdleTestnet -benchtime 1x
func BenchmarkIdleTestnet(b *testing.B) {
	if testing.Short() {
		b.Skip("starts two 4-validator chains; skipped with -short")
	}
	window := 120 * time.Second
	if s := os.Getenv("PLUG_IDLE_WINDOW"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("PLUG_IDLE_WINDOW=%q: %v", s, err)
		}
		window = time.Duration(n) * time.Second
	}
	dir := filepath.Join(b.TempDir(), "tn")
	run := func(args ...string) {
		b.Helper()
		if err := plugErr(b, nil, args...); err != nil {
			b.Fatal(err)
		}
	}
	defer func() { _ = plugErr(b, nil, "testnet", "down", "--dir", dir) }()
	for i := 0; i < b.N; i++ {
		run("testnet", "up", "--dir", dir, "--chains", "2", "--validators", "4", "--detach", "--output", "json")
		time.Sleep(10 * time.Second) // light clients created, relay settled
		run("testnet", "down", "--dir", dir)
		h0, u0 := idleFootprint(b, dir)
		run("testnet", "up", "--dir", dir, "--detach", "--output", "json")
		start := time.Now()
		time.Sleep(window)
		took := time.Since(start)
		run("testnet", "down", "--dir", dir)
		h1, u1 := idleFootprint(b, dir)
		secs := took.Seconds()
		b.ReportMetric(float64(h1-h0)/2/secs, "blocks/s/chain")
		b.ReportMetric(float64(u1-u0)/secs*3600/(1<<20), "MiB/hour")
		b.ReportMetric(float64(u1-u0)/secs*3600/(1<<20)/8, "MiB/hour/node")
		b.Logf("window %.0f s: heights %d -> %d (both chains), pages in use %d -> %d bytes", secs, h0, h1, u0, u1)
	}
}

// idleFootprint sums the chains' heights (of each chain's first node) and the
// bytes of bbolt pages in use in every node's and relay's files of a stopped
// testnet.
func idleFootprint(b *testing.B, dir string) (heights, used uint64) {
	b.Helper()
	m, err := testnet.LoadManifest(dir)
	if err != nil {
		b.Fatal(err)
	}
	var files []string
	for _, c := range m.Chains {
		for i, n := range c.Nodes {
			files = append(files, filepath.Join(n.Home, "chain.db"), filepath.Join(n.Home, "state.db"))
			if i == 0 {
				heights += blockHeight(b, filepath.Join(n.Home, "chain.db"))
			}
		}
	}
	rs, _ := filepath.Glob(filepath.Join(dir, "relays", "*", "*.db"))
	files = append(files, rs...)
	for _, f := range files {
		used += pagesInUse(b, f)
	}
	return heights, used
}

func pagesInUse(b *testing.B, path string) uint64 {
	b.Helper()
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		b.Fatalf("%s: %v", path, err)
	}
	defer db.Close()
	var size int64
	if err := db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil }); err != nil {
		b.Fatal(err)
	}
	st := db.Stats()
	free := int64(st.FreePageN+st.PendingPageN) * int64(db.Info().PageSize)
	return uint64(size - free)
}

func blockHeight(b *testing.B, path string) uint64 {
	b.Helper()
	st, err := store.Open(path)
	if err != nil {
		b.Fatalf("%s: %v", path, err)
	}
	defer st.Close()
	return st.Height()
}
