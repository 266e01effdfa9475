package state

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"pgregory.net/rapid"

	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/proof"
)

// refRoot is an independent, naive model of the hashing rule: it rebuilds the whole
// tree from the key set.
func refRoot(m map[string][]byte) hash.Hash {
	type kv struct{ p, vh hash.Hash }
	l := make([]kv, 0, len(m))
	for k, v := range m {
		l = append(l, kv{proof.KeyPath(k), proof.ValueHash(v)})
	}
	sort.Slice(l, func(i, j int) bool { return bytes.Compare(l[i].p[:], l[j].p[:]) < 0 })
	var rec func(depth int, l []kv) hash.Hash
	rec = func(depth int, l []kv) hash.Hash {
		switch len(l) {
		case 0:
			return hash.Hash{}
		case 1:
			return proof.LeafHash(l[0].p, l[0].vh)
		}
		k := sort.Search(len(l), func(i int) bool { return l[i].p.Bit(depth) == 1 })
		return proof.NodeHash(rec(depth+1, l[:k]), rec(depth+1, l[k:]))
	}
	return rec(0, l)
}

func openTemp(t testing.TB, opts ...Option) (*Store, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(p, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, p
}

// tempStore opens a store in a fresh directory under dir (for rapid, whose T has no
// TempDir).
func tempStore(t *rapid.T, dir string, opts ...Option) *Store {
	d, err := os.MkdirTemp(dir, "r")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(filepath.Join(d, "state.db"), append([]Option{WithNoSync()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tb is what both *testing.T and *rapid.T offer.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

func commit(t tb, s *Store, ch []Change) *Batch {
	t.Helper()
	b, err := s.Stage(ch)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func apply(m map[string][]byte, ch []Change) {
	for _, c := range ch {
		if c.Delete {
			delete(m, c.Key)
		} else {
			m[c.Key] = c.Value
		}
	}
}

// genChanges draws changes over a small key space, so that updates, deletes of
// present keys, deletes of absent keys and duplicate keys in one batch all occur.
func genChanges(t *rapid.T, label string, maxLen int) []Change {
	return rapid.SliceOfN(rapid.Custom(func(t *rapid.T) Change {
		k := fmt.Sprintf("k%d", rapid.IntRange(0, 60).Draw(t, "key"))
		if rapid.IntRange(0, 3).Draw(t, "op") == 0 {
			return Change{Key: k, Delete: true}
		}
		return Change{Key: k, Value: rapid.SliceOfN(rapid.Byte(), 0, 8).Draw(t, "value")}
	}), 0, maxLen).Draw(t, label)
}

func TestRootIndependentOfOrderAndSplit(t *testing.T) {
	dir := t.TempDir()
	rapid.Check(t, func(t *rapid.T) {
		ops := genChanges(t, "ops", 150)
		model := map[string][]byte{}
		apply(model, ops)
		want := refRoot(model)

		// One batch.
		s1 := tempStore(t, dir)
		defer s1.Close()
		commit(t, s1, ops)
		if s1.Root() != want {
			t.Fatalf("one batch: root %s, model %s", s1.Root(), want)
		}

		// The same sequence cut into random consecutive batches.
		s2 := tempStore(t, dir)
		defer s2.Close()
		rest := ops
		for len(rest) > 0 {
			n := rapid.IntRange(1, len(rest)).Draw(t, "cut")
			commit(t, s2, rest[:n])
			rest = rest[n:]
		}
		if s2.Root() != want {
			t.Fatalf("split batches: root %s, model %s", s2.Root(), want)
		}

		// The final key set inserted in a random order, in random batches.
		s3 := tempStore(t, dir)
		defer s3.Close()
		keys := slices.Sorted(maps.Keys(model))
		perm := rapid.Permutation(keys).Draw(t, "perm")
		for len(perm) > 0 {
			n := rapid.IntRange(1, len(perm)).Draw(t, "cut2")
			var ch []Change
			for _, k := range perm[:n] {
				ch = append(ch, Change{Key: k, Value: model[k]})
			}
			commit(t, s3, ch)
			perm = perm[n:]
		}
		if s3.Root() != want {
			t.Fatalf("permuted inserts: root %s, model %s", s3.Root(), want)
		}
	})
}

func TestDeleteRestoresCanonicalShape(t *testing.T) {
	dir := t.TempDir()
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 80).Draw(t, "n")
		model := map[string][]byte{}
		var ins []Change
		for i := 0; i < n; i++ {
			k := fmt.Sprintf("key-%d", i)
			v := []byte(fmt.Sprint(i))
			model[k] = v
			ins = append(ins, Change{Key: k, Value: v})
		}
		s := tempStore(t, dir)
		defer s.Close()
		commit(t, s, ins)
		var del []Change
		for i := 0; i < n; i++ {
			if rapid.Bool().Draw(t, "del") {
				k := fmt.Sprintf("key-%d", i)
				del = append(del, Change{Key: k, Delete: true})
				delete(model, k)
			}
		}
		commit(t, s, del)
		fresh := tempStore(t, dir)
		defer fresh.Close()
		var rest []Change
		for k, v := range model {
			rest = append(rest, Change{Key: k, Value: v})
		}
		commit(t, fresh, rest)
		if s.Root() != fresh.Root() || s.Root() != refRoot(model) {
			t.Fatalf("after deletes root %s, fresh tree %s", s.Root(), fresh.Root())
		}
		if len(model) == 0 && !s.Root().IsZero() {
			t.Fatalf("empty tree has root %s", s.Root())
		}
	})
}

var proofErr = func(err error) bool {
	return errors.Is(err, proof.ErrProofMismatch) || errors.Is(err, proof.ErrProofMalformed)
}

func cloneProof(p *proof.StateProof) *proof.StateProof {
	q := *p
	q.Present = slices.Clone(p.Present)
	q.Siblings = slices.Clone(p.Siblings)
	if p.Leaf != nil {
		l := *p.Leaf
		q.Leaf = &l
	}
	return &q
}

// checkTampered asserts that every small corruption of a valid proof is refused.
func checkTampered(t *rapid.T, root hash.Hash, key string, value []byte, found bool, p *proof.StateProof) {
	verify := func(q *proof.StateProof, root hash.Hash, key string, value []byte) error {
		if found {
			return q.VerifyMembership(root, key, value)
		}
		return q.VerifyNonMembership(root, key)
	}
	fail := func(what string, err error) {
		if err == nil || !proofErr(err) {
			t.Fatalf("%s: tampered proof (found=%v) not refused properly: %v", what, found, err)
		}
	}
	if len(p.Siblings) > 0 {
		q := cloneProof(p)
		i := rapid.IntRange(0, len(q.Siblings)-1).Draw(t, "sib")
		q.Siblings[i][rapid.IntRange(0, hash.Size-1).Draw(t, "byte")] ^= 1 << rapid.IntRange(0, 7).Draw(t, "bit")
		fail("flipped sibling", verify(q, root, key, value))

		q = cloneProof(p)
		q.Siblings = append(q.Siblings[:i], q.Siblings[i+1:]...)
		fail("dropped sibling", verify(q, root, key, value))
	}
	q := cloneProof(p)
	q.Depth++
	fail("deeper", verify(q, root, key, value))
	if p.Depth > 0 {
		q := cloneProof(p)
		q.Depth--
		fail("shallower", verify(q, root, key, value))
	}
	bad := root
	bad[0] ^= 0x80
	fail("wrong root", verify(p, bad, key, value))
	if found {
		fail("wrong value", p.VerifyMembership(root, key, append(slices.Clone(value), 'x')))
		fail("wrong key", p.VerifyMembership(root, key+"x", value))
		fail("non-membership of a present key", p.VerifyNonMembership(root, key))
	} else {
		fail("membership of an absent key", p.VerifyMembership(root, key, value))
		if p.Leaf != nil {
			q := cloneProof(p)
			q.Leaf.ValueHash[3] ^= 4
			fail("altered leaf", verify(q, root, key, value))
			q = cloneProof(p)
			q.Leaf = nil
			fail("dropped leaf", verify(q, root, key, value))
		}
	}
}

func TestProofsAtAllVersions(t *testing.T) {
	dir := t.TempDir()
	rapid.Check(t, func(t *rapid.T) {
		s := tempStore(t, dir)
		defer s.Close()
		models := []map[string][]byte{{}}
		nv := rapid.IntRange(1, 5).Draw(t, "versions")
		for v := 1; v <= nv; v++ {
			ch := genChanges(t, "changes", 40)
			m := maps.Clone(models[v-1])
			apply(m, ch)
			commit(t, s, ch)
			models = append(models, m)
		}
		for v := 0; v <= nv; v++ {
			root, err := s.RootAt(uint64(v))
			if err != nil {
				t.Fatal(err)
			}
			if root != refRoot(models[v]) {
				t.Fatalf("version %d: root %s, model %s", v, root, refRoot(models[v]))
			}
			for k := 0; k <= 60; k += rapid.IntRange(1, 6).Draw(t, "step") {
				key := fmt.Sprintf("k%d", k)
				want, wantOK := models[v][key]
				val, found, proof, err := s.Prove(uint64(v), key)
				if err != nil {
					t.Fatal(err)
				}
				if found != wantOK || !bytes.Equal(val, want) {
					t.Fatalf("version %d key %s: got %q,%v want %q,%v", v, key, val, found, want, wantOK)
				}
				g, gOK, err := s.GetAt(uint64(v), key)
				if err != nil || gOK != found || !bytes.Equal(g, val) {
					t.Fatalf("GetAt disagrees with Prove: %q %v %v", g, gOK, err)
				}
				if found {
					err = proof.VerifyMembership(root, key, val)
				} else {
					err = proof.VerifyNonMembership(root, key)
				}
				if err != nil {
					t.Fatalf("version %d key %s found=%v: valid proof refused: %v", v, key, found, err)
				}
				checkTampered(t, root, key, val, found, proof)
			}
		}
		if _, _, _, err := s.Prove(uint64(nv+1), "k1"); !errors.Is(err, ErrUnknownVersion) {
			t.Fatalf("prove at a future version: %v", err)
		}
	})
}

func TestGetAtPastVersions(t *testing.T) {
	s, _ := openTemp(t, WithNoSync())
	for v := 1; v <= 20; v++ {
		var ch []Change
		for k := 0; k < 50; k++ {
			switch {
			case k%v == 0:
				ch = append(ch, Change{Key: fmt.Sprintf("k%02d", k), Value: fmt.Appendf(nil, "v%d-%d", v, k)})
			case k%7 == v%7:
				ch = append(ch, Change{Key: fmt.Sprintf("k%02d", k), Delete: true})
			}
		}
		commit(t, s, ch)
	}
	// Replay the model and compare every version.
	m := map[string][]byte{}
	for v := 1; v <= 20; v++ {
		for k := 0; k < 50; k++ {
			key := fmt.Sprintf("k%02d", k)
			switch {
			case k%v == 0:
				m[key] = fmt.Appendf(nil, "v%d-%d", v, k)
			case k%7 == v%7:
				delete(m, key)
			}
		}
		for k := 0; k < 50; k++ {
			key := fmt.Sprintf("k%02d", k)
			got, ok, err := s.GetAt(uint64(v), key)
			want, wok := m[key]
			if err != nil || ok != wok || !bytes.Equal(got, want) {
				t.Fatalf("GetAt(%d,%s) = %q,%v,%v want %q,%v", v, key, got, ok, err, want, wok)
			}
		}
	}
	for k := 0; k < 50; k++ {
		key := fmt.Sprintf("k%02d", k)
		got, ok, err := s.Get(key)
		want, wok := m[key]
		if err != nil || ok != wok || !bytes.Equal(got, want) {
			t.Fatalf("Get(%s) = %q,%v,%v want %q,%v", key, got, ok, err, want, wok)
		}
	}
	if _, _, err := s.GetAt(21, "k01"); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("GetAt future: %v", err)
	}
	if v, ok, err := s.GetAt(0, "k01"); err != nil || ok || v != nil {
		t.Fatalf("GetAt(0) = %q %v %v", v, ok, err)
	}
}

func TestReopenAndUncommittedStage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.Version() != 0 || !s.Root().IsZero() {
		t.Fatalf("fresh store: version %d root %s", s.Version(), s.Root())
	}
	commit(t, s, []Change{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}})
	b2 := commit(t, s, []Change{{Key: "c", Value: []byte("3")}, {Key: "a", Delete: true}})
	b3, err := s.Stage([]Change{{Key: "d", Value: []byte("4")}})
	if err != nil {
		t.Fatal(err)
	}
	if b3.Version() != 3 || b3.Root() == b2.Root() {
		t.Fatalf("staged batch: version %d root %s", b3.Version(), b3.Root())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Version() != 2 || s.Root() != b2.Root() {
		t.Fatalf("reopened: version %d root %s, want 2 %s", s.Version(), s.Root(), b2.Root())
	}
	if _, ok, _ := s.Get("d"); ok {
		t.Fatal("uncommitted key visible after reopen")
	}
	if v, ok, _ := s.Get("c"); !ok || string(v) != "3" {
		t.Fatalf("Get(c) = %q %v", v, ok)
	}
	if v, ok, _ := s.GetAt(1, "a"); !ok || string(v) != "1" {
		t.Fatalf("GetAt(1,a) = %q %v", v, ok)
	}
	// The batch staged on the closed store cannot be committed here.
	if err := s.Commit(b3); !errors.Is(err, ErrStaleBatch) {
		t.Fatalf("commit of a foreign batch: %v", err)
	}
	commit(t, s, []Change{{Key: "d", Value: []byte("4")}})
	if s.Root() != b3.Root() {
		t.Fatalf("same change after reopen: root %s, staged before %s", s.Root(), b3.Root())
	}
}

func TestStaleBatchAndLimits(t *testing.T) {
	s, _ := openTemp(t, WithNoSync(), WithMaxValueSize(16), WithMaxKeySize(8))
	b1, _ := s.Stage([]Change{{Key: "x", Value: []byte("1")}})
	b2, _ := s.Stage([]Change{{Key: "y", Value: []byte("2")}})
	if err := s.Commit(b1); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(b2); !errors.Is(err, ErrStaleBatch) {
		t.Fatalf("second batch on the same base: %v", err)
	}
	if err := s.Commit(b1); !errors.Is(err, ErrStaleBatch) {
		t.Fatalf("batch committed twice: %v", err)
	}
	if _, err := s.Stage([]Change{{Key: "123456789", Value: nil}}); !errors.Is(err, ErrKeyTooLarge) {
		t.Fatalf("long key: %v", err)
	}
	if _, err := s.Stage([]Change{{Key: "k", Value: make([]byte, 17)}}); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("large value: %v", err)
	}
	if _, err := s.Stage([]Change{{Key: "k", Value: make([]byte, 17), Delete: true}}); err != nil {
		t.Fatalf("delete ignores its value: %v", err)
	}
	if _, err := s.Stage([]Change{{Key: ""}}); !errors.Is(err, ErrEmptyKey) {
		t.Fatalf("empty key: %v", err)
	}
	if _, err := s.RootAt(5); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("RootAt future: %v", err)
	}
	// Last change of a key wins; the value is copied at Stage.
	buf := []byte("first")
	b, err := s.Stage([]Change{{Key: "d", Value: buf}, {Key: "d", Value: []byte("second")}, {Key: "e", Value: buf}})
	if err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXX")
	if err := s.Commit(b); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := s.Get("d"); string(v) != "second" {
		t.Fatalf("duplicate key: %q", v)
	}
	if v, _, _ := s.Get("e"); string(v) != "first" {
		t.Fatalf("value not copied at Stage: %q", v)
	}
	// An empty value is a value, not a deletion.
	commit(t, s, []Change{{Key: "z", Value: nil}})
	if v, ok, _ := s.Get("z"); !ok || len(v) != 0 {
		t.Fatalf("empty value: %q %v", v, ok)
	}
	if v, ok, _, err := s.Prove(s.Version(), "z"); err != nil || !ok || len(v) != 0 {
		t.Fatalf("prove empty value: %q %v %v", v, ok, err)
	}
}

func TestIterate(t *testing.T) {
	s, _ := openTemp(t, WithNoSync())
	var ch []Change
	for i := 0; i < 30; i++ {
		ch = append(ch, Change{Key: fmt.Sprintf("acct/%02d", i), Value: []byte{byte(i)}})
		ch = append(ch, Change{Key: fmt.Sprintf("bal/%02d", i), Value: []byte{byte(i)}})
	}
	commit(t, s, ch)
	commit(t, s, []Change{{Key: "acct/05", Delete: true}})
	var got []string
	err := s.Iterate("acct/", func(k string, v []byte) error {
		if !strings.HasPrefix(k, "acct/") {
			t.Fatalf("key %q outside prefix", k)
		}
		got = append(got, k)
		return nil
	})
	if err != nil || len(got) != 29 || !slices.IsSorted(got) || slices.Contains(got, "acct/05") {
		t.Fatalf("Iterate: %v %v", got, err)
	}
	n := 0
	stop := errors.New("stop")
	if err := s.Iterate("", func(string, []byte) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("Iterate stop: %v %d", err, n)
	}
	n = 0
	s.Iterate("", func(string, []byte) error { n++; return nil })
	if n != 59 {
		t.Fatalf("Iterate all: %d", n)
	}
}

// TestConcurrentReadsDuringStageAndCommit exercises the documented concurrency
// (run it with -race).
func TestConcurrentReadsDuringStageAndCommit(t *testing.T) {
	s, _ := openTemp(t, WithNoSync(), WithNodeCache(500))
	var ch []Change
	for i := 0; i < 5000; i++ {
		ch = append(ch, Change{Key: fmt.Sprintf("k%d", i), Value: []byte{byte(i)}})
	}
	commit(t, s, ch) // large enough to use the parallel path
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				v := s.Version()
				root, err := s.RootAt(v)
				if err != nil {
					t.Error(err)
					return
				}
				key := fmt.Sprintf("k%d", (i*31+g)%6000)
				val, found, p, err := s.Prove(v, key)
				if err != nil {
					t.Error(err)
					return
				}
				if found {
					err = p.VerifyMembership(root, key, val)
				} else {
					err = p.VerifyNonMembership(root, key)
				}
				if err != nil {
					t.Error(err)
					return
				}
				if _, _, err := s.Get(key); err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	for v := 0; v < 10; v++ {
		var ch []Change
		for i := 0; i < 5000; i++ {
			ch = append(ch, Change{Key: fmt.Sprintf("k%d", (i*7+v)%6000), Value: []byte{byte(v), byte(i)}})
		}
		commit(t, s, ch)
	}
	close(stop)
	wg.Wait()
}
