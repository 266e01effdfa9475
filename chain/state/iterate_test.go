package state

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plugchain/plug/chain/proof"
)

// TestIterateAtOldVersions commits versions that set, overwrite, delete and
// re-create keys, then checks that IterateAt of every version returns exactly
// that version's state (and that it hashes to the version's root), although later
// versions changed and deleted keys since.
func TestIterateAtOldVersions(t *testing.T) {
	s, _ := openTemp(t, WithNoSync())
	rng := rand.New(rand.NewPCG(1, 2))
	model := map[string][]byte{}
	var want []map[string][]byte // want[v] is the state of version v
	want = append(want, map[string][]byte{})
	for v := 1; v <= 30; v++ {
		var ch []Change
		for range 40 {
			k := fmt.Sprintf("k/%03d", rng.IntN(120))
			if rng.IntN(4) == 0 {
				ch = append(ch, Change{Key: k, Delete: true})
				delete(model, k)
			} else {
				val := fmt.Appendf(nil, "v%d-%d", v, rng.IntN(1000))
				ch = append(ch, Change{Key: k, Value: val})
				model[k] = val
			}
		}
		// Last change of a key wins in Stage, as in the model (applied in order).
		b, err := s.Stage(ch)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(b); err != nil {
			t.Fatal(err)
		}
		want = append(want, maps.Clone(model))
	}
	for v := range want {
		got := map[string][]byte{}
		var last string
		var leaves []proof.StateLeafOf
		err := s.IterateAt(uint64(v), "", func(k string, val []byte) error {
			if k <= last && last != "" {
				return fmt.Errorf("key %q after %q: not in key order", k, last)
			}
			last = k
			got[k] = val
			leaves = append(leaves, proof.StateLeafOf{Path: proof.KeyPath(k), ValueHash: proof.ValueHash(val)})
			return nil
		})
		if err != nil {
			t.Fatalf("version %d: %v", v, err)
		}
		if !maps.EqualFunc(got, want[v], func(a, b []byte) bool { return string(a) == string(b) }) {
			t.Fatalf("version %d: IterateAt gave %d keys, want %d", v, len(got), len(want[v]))
		}
		root, err := s.RootAt(uint64(v))
		if err != nil {
			t.Fatal(err)
		}
		if r := proof.StateRoot(leaves); r != root {
			t.Fatalf("version %d: StateRoot of the entries %s, store root %s", v, r.Short(), root.Short())
		}
		if r := refRoot(got); r != root {
			t.Fatalf("version %d: reference root %s, store root %s", v, r.Short(), root.Short())
		}
	}
	// A prefix restricts the walk.
	n := 0
	if err := s.IterateAt(10, "k/05", func(k string, _ []byte) error {
		if !strings.HasPrefix(k, "k/05") {
			t.Fatalf("key %q outside the prefix", k)
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	wantN := 0
	for k := range want[10] {
		if strings.HasPrefix(k, "k/05") {
			wantN++
		}
	}
	if n != wantN {
		t.Fatalf("prefix k/05 at version 10: %d keys, want %d", n, wantN)
	}
	if err := s.IterateAt(31, "", func(string, []byte) error { return nil }); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("IterateAt of an uncommitted version: %v, want ErrUnknownVersion", err)
	}
}

// TestReadOnlyOpen: a read-only store reads what a writer committed, and cannot
// be opened while a writer holds the file.
func TestReadOnlyOpen(t *testing.T) {
	s, p := openTemp(t, WithNoSync())
	b, err := s.Stage([]Change{{Key: "a", Value: []byte("1")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(b); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(p, WithReadOnly(), WithOpenTimeout(100*time.Millisecond)); !errors.Is(err, ErrLocked) {
		t.Fatalf("read-only open while a writer has the file: %v, want ErrLocked", err)
	}
	s.Close()
	r, err := Open(p, WithReadOnly(), WithOpenTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if v, ok, err := r.Get("a"); err != nil || !ok || string(v) != "1" {
		t.Fatalf("read-only Get: %q %v %v", v, ok, err)
	}
	if r.Version() != 1 {
		t.Fatalf("read-only version %d, want 1", r.Version())
	}
	b, err = r.Stage([]Change{{Key: "b", Value: []byte("2")}})
	if err == nil {
		err = r.Commit(b)
	}
	if err == nil {
		t.Fatal("a read-only store committed")
	}
}

// TestIterateAtUnknownKey: a store that did not record a deletion (written before
// the "gone" bucket existed) cannot name the deleted key at an old version; the
// full walk says so instead of returning less than the version's state.
func TestIterateAtUnknownKey(t *testing.T) {
	s, _ := openTemp(t, WithNoSync())
	for _, ch := range [][]Change{
		{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}},
		{{Key: "b", Delete: true}},
	} {
		b, err := s.Stage(ch)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.IterateAt(1, "", func(string, []byte) error { return nil }); err != nil {
		t.Fatalf("with the deletion recorded: %v", err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketGone) }); err != nil {
		t.Fatal(err)
	}
	if err := s.IterateAt(1, "", func(string, []byte) error { return nil }); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("without it: %v, want ErrUnknownKey", err)
	}
}
