package spv_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/proof"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/spv"
)

// The state tree here is chain/state's, on a temporary bbolt file: a test-only
// dependency, so the proofs checked are the ones a real node serves.

func openState(t testing.TB) *state.Store {
	t.Helper()
	s, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func commit(t testing.TB, s *state.Store, ch []state.Change) hash.Hash {
	t.Helper()
	b, err := s.Stage(ch)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(b); err != nil {
		t.Fatal(err)
	}
	return s.Root()
}

func accountKey(i int) string { return fmt.Sprintf("acct/%08d", i) }

func accountValue(i, version int) []byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	binary.BigEndian.PutUint64(b[8:], uint64(version))
	return b[:]
}

// fillState commits n accounts as one version and returns its root.
func fillState(t testing.TB, s *state.Store, n, version int) hash.Hash {
	ch := make([]state.Change, n)
	for i := range ch {
		ch[i] = state.Change{Key: accountKey(i), Value: accountValue(i, version)}
	}
	return commit(t, s, ch)
}

func TestClientStateProofsAgainstRealTree(t *testing.T) {
	s := openState(t)
	// Version 1: 1,000 accounts plus alice and bob. Version 2: alice changes, bob
	// is deleted, carol appears. Version 3: nothing changes but the height.
	fillState(t, s, 1000, 1)
	roots := map[uint64]hash.Hash{}
	roots[1] = commit(t, s, []state.Change{{Key: "alice", Value: []byte("100")}, {Key: "bob", Value: []byte("5")}})
	roots[2] = commit(t, s, []state.Change{{Key: "alice", Value: []byte("70")}, {Key: "bob", Delete: true},
		{Key: "carol", Value: []byte("30")}})
	roots[3] = roots[2]
	version := func(h uint64) uint64 { return min(h+1, 3) } // state version of height h
	tc := newTestChain(3, nil, func(h uint64) hash.Hash { return roots[h] })
	c := tc.client(t, 3)

	prove := func(h uint64, key string) ([]byte, bool, *proof.StateProof) {
		v, found, p, err := s.Prove(version(h), key)
		if err != nil {
			t.Fatal(err)
		}
		return v, found, p
	}
	type claim struct {
		h     uint64
		key   string
		value []byte // nil: absent
	}
	truth := []claim{
		{1, "alice", []byte("100")}, {1, "bob", []byte("5")}, {1, "carol", nil},
		{2, "alice", []byte("70")}, {2, "bob", nil}, {2, "carol", []byte("30")},
		{3, "alice", []byte("70")}, {3, accountKey(7), accountValue(7, 1)}, {3, "nobody", nil},
	}
	for _, cl := range truth {
		v, found, p := prove(cl.h, cl.key)
		if found != (cl.value != nil) || string(v) != string(cl.value) {
			t.Fatalf("%q at %d: store says %q %t", cl.key, cl.h, v, found)
		}
		if found {
			if err := c.VerifyMembership(cl.h, cl.key, cl.value, p); err != nil {
				t.Fatalf("%q at %d: %v", cl.key, cl.h, err)
			}
			if err := c.VerifyMembership(cl.h, cl.key, []byte("999"), p); !errors.Is(err, proof.ErrProofMismatch) {
				t.Fatalf("%q at %d with a wrong value: %v", cl.key, cl.h, err)
			}
			if err := c.VerifyNonMembership(cl.h, cl.key, p); err == nil {
				t.Fatalf("%q at %d: membership proof passed as absence", cl.key, cl.h)
			}
		} else {
			if err := c.VerifyNonMembership(cl.h, cl.key, p); err != nil {
				t.Fatalf("%q absent at %d: %v", cl.key, cl.h, err)
			}
			if err := c.VerifyMembership(cl.h, cl.key, []byte("1"), p); err == nil {
				t.Fatalf("%q at %d: absence proof passed as membership", cl.key, cl.h)
			}
		}
	}
	// A proof of height 1 does not verify at height 2 (bob's balance is stale there).
	_, _, p := prove(1, "bob")
	if err := c.VerifyMembership(2, "bob", []byte("5"), p); !errors.Is(err, proof.ErrProofMismatch) {
		t.Fatalf("stale proof: %v", err)
	}
	if err := c.VerifyMembership(4, "alice", []byte("70"), p); !errors.Is(err, spv.ErrUnknownHeight) {
		t.Fatalf("unverified height: %v", err)
	}
	if err := c.VerifyMembership(2, "alice", []byte("70"), nil); !errors.Is(err, proof.ErrProofMalformed) {
		t.Fatalf("nil proof: %v", err)
	}
	if err := c.VerifyNonMembership(2, "bob", nil); !errors.Is(err, proof.ErrProofMalformed) {
		t.Fatalf("nil proof: %v", err)
	}
}

// stateBundle is the layout measured for docs/light-client.md: what a relay sends
// to prove one state entry at a new height.
type stateBundle struct {
	Update spv.HeaderUpdate  `cbor:"1,keyasint"`
	Key    string            `cbor:"2,keyasint"`
	Value  []byte            `cbor:"3,keyasint"`
	Proof  *proof.StateProof `cbor:"4,keyasint"`
}

type bundleSizes struct{ header, cert, nextSet, update, proof, bundle int }

// measureBundle builds a tree of n accounts, a 4-validator chain committing to it,
// and the bundle proving one account at height 3.
func measureBundle(t testing.TB, n int) (*testChain, *spv.ClientState, bundleSizes) {
	s := openState(t)
	root := fillState(t, s, n, 1)
	tc := newTestChain(3, nil, func(uint64) hash.Hash { return root })
	c := tc.client(t, 2)
	key := accountKey(n / 3)
	v, _, p, err := s.Prove(s.Version(), key)
	if err != nil {
		t.Fatal(err)
	}
	hdr, cert, next := tc.update(3)
	b := stateBundle{Update: spv.HeaderUpdate{Header: hdr, Cert: cert, NextSet: next}, Key: key, Value: v, Proof: p}
	n3, err := c.Apply(&b.Update)
	if err != nil {
		t.Fatal(err)
	}
	if err := n3.VerifyMembership(3, b.Key, b.Value, b.Proof); err != nil {
		t.Fatal(err)
	}
	size := func(v any) int { return len(encoding.MustMarshal(v)) }
	return tc, c, bundleSizes{size(&hdr), size(&cert), size(next), size(&b.Update), size(p), size(&b)}
}

func TestBundleSize(t *testing.T) {
	sizes := []int{1_000, 100_000}
	if testing.Short() {
		sizes = sizes[:1]
	}
	for _, n := range sizes {
		_, _, z := measureBundle(t, n)
		t.Logf("tree of %d keys, 4 validators: header %d B, certificate %d B, next set %d B, update %d B, state proof %d B, bundle %d B",
			n, z.header, z.cert, z.nextSet, z.update, z.proof, z.bundle)
		if z.bundle > 2048 {
			t.Errorf("bundle of %d bytes is larger than expected", z.bundle)
		}
	}
}

// BenchmarkVerifyUpdate verifies one header update (4 validators) per iteration and
// reports the size of a typical bundle (update + state proof in a 100,000-key tree).
func BenchmarkVerifyUpdate(b *testing.B) {
	tc, c, z := measureBundle(b, 100_000)
	hdr, cert, next := tc.update(3)
	for b.Loop() {
		if _, err := c.Update(hdr, cert, next); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
	b.ReportMetric(float64(z.bundle), "bundle-bytes")
	b.ReportMetric(float64(z.proof), "proof-bytes")
}

// BenchmarkVerifyStateProof verifies one state proof against a verified root.
func BenchmarkVerifyStateProof(b *testing.B) {
	s := openState(b)
	root := fillState(b, s, 100_000, 1)
	tc := newTestChain(2, nil, func(uint64) hash.Hash { return root })
	c := tc.client(b, 2)
	key := accountKey(4242)
	v, _, p, err := s.Prove(s.Version(), key)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := c.VerifyMembership(2, key, v, p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "proofs/s")
}
