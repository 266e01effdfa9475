package state

import (
	"errors"
	"fmt"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/plugchain/plug/chain/boltcheck"
)

func TestVerify(t *testing.T) {
	s, path := openTemp(t, WithNoSync())
	if v, err := s.Verify(nil); err != nil || v.Root != (Verification{}).Root {
		t.Fatalf("empty store: %+v %v", v, err)
	}
	m := map[string][]byte{}
	for ver := range 5 {
		var ch []Change
		for i := range 300 {
			k := fmt.Sprintf("k/%d", (i*7+ver*13)%500)
			v := []byte(fmt.Sprintf("v%d-%d", ver, i))
			if i%11 == 0 {
				v = nil // a delete
			}
			ch = append(ch, Change{Key: k, Value: v})
		}
		commit(t, s, ch)
		apply(m, ch)
	}
	calls := 0
	v, err := s.Verify(func(int) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if v.Root != s.Root() || v.FlatRoot != refRoot(m) || v.Keys != len(m) || v.Leaves != len(m) || v.Version != 5 || calls == 0 {
		t.Fatalf("verification %+v, %d keys, %d progress calls", v, len(m), calls)
	}

	// A changed value in the flat view (what Get reads): the recomputed root
	// differs from the recorded one.
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketLatest).Put([]byte("k/13"), []byte("forged")) })
	db.Close()
	s, err = Open(path, WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Verify(nil)
	var fe *boltcheck.Error
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &fe) || fe.Path != path {
		t.Fatalf("forged flat value: %v", err)
	}
	if _, err := s.Stage(nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(&Batch{}); err == nil {
		t.Fatal("a read-only store committed")
	}
}

// A damaged tree node is found by the walk.
func TestVerifyDamagedNode(t *testing.T) {
	s, path := openTemp(t, WithNoSync())
	var ch []Change
	for i := range 200 {
		ch = append(ch, Change{Key: fmt.Sprintf("key-%d", i), Value: []byte("value")})
	}
	commit(t, s, ch)
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketNodes).Cursor()
		k, v := c.Last()
		v = append([]byte(nil), v...)
		v[len(v)-1] ^= 1
		return tx.Bucket(bucketNodes).Put(append([]byte(nil), k...), v)
	})
	db.Close()
	s, err = Open(path, WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Verify(nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged node: %v", err)
	}
}
