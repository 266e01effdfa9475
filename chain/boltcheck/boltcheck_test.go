package boltcheck_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/plugchain/plug/chain/boltcheck"
)

// makeDB writes a bbolt file of a few hundred pages (two buckets, values of
// 1 KB and some of 10 KB, which take overflow pages) and returns its path.
func makeDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "chain.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, name := range []string{"blocks", "headers"} {
		err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			for i := range 500 {
				v := make([]byte, 1000+(i%50)*200)
				for j := range v {
					v[j] = byte(rng.Uint32())
				}
				if err := b.Put(fmt.Appendf(nil, "%08d", i), v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func info(t *testing.T, path string) *boltcheck.Info {
	t.Helper()
	in, err := boltcheck.ReadInfo(path)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func wantFault(t *testing.T, err error, sentinel error, path string) {
	t.Helper()
	var fe *boltcheck.Error
	if !errors.As(err, &fe) || !errors.Is(err, sentinel) {
		t.Fatalf("got %v, want a *boltcheck.Error of %v", err, sentinel)
	}
	msg := err.Error()
	if !strings.Contains(msg, path) || !strings.Contains(msg, "plug node resync --home "+filepath.Dir(path)) ||
		!strings.Contains(msg, "backup") || strings.Contains(msg, "\n") {
		t.Fatalf("message %q does not name the file and the repair on one line", msg)
	}
}

func TestSoundFile(t *testing.T) {
	path := makeDB(t)
	in := info(t, path)
	if in.Err != nil || in.Used == nil || !in.Metas[0].Valid || !in.Metas[1].Valid {
		t.Fatalf("sound file: %+v %v", in, in.Err)
	}
	if in.Used.PageSize != uint32(os.Getpagesize()) || in.Need > in.Size || in.Used.Pgid < 100 {
		t.Fatalf("meta: %+v, size %d", in.Used, in.Size)
	}
	db, err := boltcheck.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := boltcheck.Walk(db, path, nil)
	if err != nil || st.Keys != 1000 || st.Buckets != 2 {
		t.Fatalf("walk: %+v %v", st, err)
	}
	if found, err := boltcheck.Check(db, 10); err != nil || len(found) != 0 {
		t.Fatalf("check: %v %v", found, err)
	}
}

func TestMissingAndEmptyFilesAreNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	if err := boltcheck.CheckFile(path); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, nil, 0o600)
	if in := info(t, path); !in.Empty || in.Err != nil {
		t.Fatalf("%+v", in)
	}
}

// The observed fault: a truncated file made bbolt die of SIGBUS in Open.
func TestTruncatedFileIsRefused(t *testing.T) {
	for _, cut := range []func(need int64) int64{
		func(need int64) int64 { return need / 2 },
		func(need int64) int64 { return need - 1 },
		func(int64) int64 { return int64(os.Getpagesize()) + 100 }, // past the first meta page only
	} {
		path := makeDB(t)
		need := info(t, path).Need
		if err := os.Truncate(path, cut(need)); err != nil {
			t.Fatal(err)
		}
		wantFault(t, boltcheck.CheckFile(path), boltcheck.ErrTruncated, path)
		_, err := boltcheck.Open(path, nil)
		wantFault(t, err, boltcheck.ErrCorrupt, path)
	}
}

func zeroPage(t *testing.T, path string, page int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ps := os.Getpagesize()
	if _, err := f.WriteAt(make([]byte, ps), int64(page*ps)); err != nil {
		t.Fatal(err)
	}
}

func TestZeroedMetaPages(t *testing.T) {
	// One bad meta page is what a crash in the middle of a commit leaves: bbolt
	// opens the file with the other, and so does the check.
	for _, page := range []int{0, 1} {
		path := makeDB(t)
		zeroPage(t, path, page)
		in := info(t, path)
		if in.Err != nil || in.Metas[page].Valid || in.Used == nil {
			t.Fatalf("meta page %d zeroed: %+v %v", page, in.Metas, in.Err)
		}
		db, err := boltcheck.Open(path, nil)
		if err != nil {
			t.Fatalf("meta page %d zeroed: %v", page, err)
		}
		db.Close()
	}
	path := makeDB(t)
	zeroPage(t, path, 0)
	zeroPage(t, path, 1)
	in := info(t, path)
	wantFault(t, in.Err, boltcheck.ErrCorrupt, path)
	if !strings.Contains(in.Err.Detail, "no valid meta page") {
		t.Fatal(in.Err)
	}
	_, err := boltcheck.Open(path, nil)
	wantFault(t, err, boltcheck.ErrCorrupt, path)
}

// A flipped byte in a meta page fails its checksum.
func TestMetaChecksum(t *testing.T) {
	path := makeDB(t)
	b, _ := os.ReadFile(path)
	ps := os.Getpagesize()
	b[16+40]++    // meta 0's high-water mark
	b[ps+16+40]++ // meta 1's
	os.WriteFile(path, b, 0o600)
	in := info(t, path)
	if in.Err == nil || in.Metas[0].Problem != "checksum mismatch" {
		t.Fatalf("%+v %v", in.Metas, in.Err)
	}
}

// pagesOf returns the ids of the pages of type typ that db's buckets use.
func pagesOf(t *testing.T, path, typ string) []int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ids []int
	db.View(func(tx *bolt.Tx) error {
		for id := 2; ; id++ {
			p, err := tx.Page(id)
			if err != nil || p == nil {
				return nil
			}
			if p.Type == typ {
				ids = append(ids, id)
			}
		}
	})
	return ids
}

// Random bytes over pages in use: bbolt does not crash the process, Open (whose
// walk reads every page) reports the file, and so would any later read.
func TestRandomBytesInPages(t *testing.T) {
	for _, typ := range []string{"leaf", "branch"} {
		for seed := range uint64(5) {
			path := makeDB(t)
			ids := pagesOf(t, path, typ)
			if len(ids) == 0 {
				t.Fatalf("no %s pages", typ)
			}
			rng := rand.New(rand.NewPCG(seed, 7))
			f, _ := os.OpenFile(path, os.O_RDWR, 0)
			ps := os.Getpagesize()
			junk := make([]byte, ps)
			for range 3 {
				for i := range junk {
					junk[i] = byte(rng.Uint32())
				}
				f.WriteAt(junk, int64(ids[rng.IntN(len(ids))]*ps))
			}
			f.Close()
			if err := boltcheck.CheckFile(path); err != nil {
				t.Fatalf("the meta pages are intact: %v", err)
			}
			db, err := boltcheck.Open(path, nil)
			if err == nil {
				db.Close()
				t.Fatalf("%s pages, seed %d: Open accepted a file with random pages", typ, seed)
			}
			wantFault(t, err, boltcheck.ErrCorrupt, path)
		}
	}
}

// Guard turns the SIGBUS of a read past the end of a file that shrank under
// bbolt's map into an error.
func TestGuardRecoversAFault(t *testing.T) {
	path := makeDB(t)
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := os.Truncate(path, int64(2*os.Getpagesize())); err != nil {
		t.Fatal(err)
	}
	_, err = boltcheck.Walk(db, path, nil)
	wantFault(t, err, boltcheck.ErrCorrupt, path)
	if !strings.Contains(err.Error(), "memory fault at 0x") {
		t.Fatalf("want the fault in the message: %v", err)
	}
}
