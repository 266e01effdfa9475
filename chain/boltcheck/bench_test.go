package boltcheck_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plugchain/plug/chain/boltcheck"
)

// BenchmarkGuard is what every guarded read of the node pays on top of the read.
func BenchmarkGuard(b *testing.B) {
	for b.Loop() {
		boltcheck.Guard("x", func() error { return nil })
	}
}

// TestWalkSpeed measures Walk and ReadInfo on a file of PLUG_WALK_MB MiB
// (skipped without it): the cost Open pays for files up to QuickWalkLimit.
func TestWalkSpeed(t *testing.T) {
	var mb int
	if _, err := fmt.Sscan(os.Getenv("PLUG_WALK_MB"), &mb); err != nil || mb <= 0 {
		t.Skip("set PLUG_WALK_MB")
	}
	path := filepath.Join(t.TempDir(), "big.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true, NoGrowSync: true})
	if err != nil {
		t.Fatal(err)
	}
	val := make([]byte, 2000)
	for i := 0; i < mb*512; i += 5000 {
		db.Update(func(tx *bolt.Tx) error {
			bk, _ := tx.CreateBucketIfNotExists([]byte("b"))
			for j := i; j < i+5000 && j < mb*512; j++ {
				val[0], val[1] = byte(j), byte(j>>8)
				bk.Put(fmt.Appendf(nil, "%012d", j), val)
			}
			return nil
		})
	}
	db.Close()
	st, _ := os.Stat(path)
	t0 := time.Now()
	if err := boltcheck.CheckFile(path); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	db, err = bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	t2 := time.Now()
	ws, err := boltcheck.Walk(db, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t3 := time.Now()
	found, _ := boltcheck.Check(db, 5)
	t.Logf("%d MiB file: CheckFile %v, Walk %v (%d keys), Tx.Check %v (%d findings)",
		st.Size()>>20, t1.Sub(t0), t3.Sub(t2), ws.Keys, time.Since(t3), len(found))
}
