package store_test

import (
	"encoding/binary"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/plugchain/plug/chain/boltcheck"
	"github.com/plugchain/plug/chain/store"
)

func TestVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chain.db")
	s := open(t, path, store.WithNoSync())
	saveVaried(t, s, 12)
	var last uint64
	found, err := s.Verify(10, func(h, of uint64) { last = h })
	if err != nil || len(found) != 0 || last != 12 {
		t.Fatalf("sound store: %v %v, progress to %d", found, err, last)
	}
	s.Close()

	key := func(h uint64) []byte { return binary.BigEndian.AppendUint64(nil, h) }
	for _, c := range []struct {
		name, want string
		damage     func(tx *bolt.Tx) error
	}{
		{"header", "header 5", func(tx *bolt.Tx) error { return tx.Bucket([]byte("headers")).Put(key(5), []byte{0xa0}) }},
		{"block id", "recorded block ID", func(tx *bolt.Tx) error { return tx.Bucket([]byte("ids")).Put(key(7), make([]byte, 32)) }},
		{"certificate", "certificate 3", func(tx *bolt.Tx) error { return tx.Bucket([]byte("certs")).Delete(key(3)) }},
		{"block bytes", "block 9", func(tx *bolt.Tx) error {
			v := append([]byte(nil), tx.Bucket([]byte("blocks")).Get(key(9))...)
			v[len(v)/2] ^= 0x55
			return tx.Bucket([]byte("blocks")).Put(key(9), v)
		}},
	} {
		p := filepath.Join(t.TempDir(), "chain.db")
		s := open(t, p, store.WithNoSync())
		saveVaried(t, s, 12)
		s.Close()
		db, err := bolt.Open(p, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(c.damage); err != nil {
			t.Fatal(err)
		}
		db.Close()
		s = open(t, p, store.WithReadOnly())
		found, err := s.Verify(10, nil)
		s.Close()
		if err != nil || len(found) == 0 || !strings.Contains(found[0], c.want) {
			t.Fatalf("%s damaged: %q %v, want a finding about %q", c.name, found, err, c.want)
		}
	}
}

// A read of a record that does not decode names the file.
func TestCorruptReadNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chain.db")
	s := open(t, path, store.WithNoSync())
	saveVaried(t, s, 3)
	s.Close()
	db, _ := bolt.Open(path, 0o600, nil)
	db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("certs")).Put(binary.BigEndian.AppendUint64(nil, 2), []byte{0xff, 0x00})
	})
	db.Close()
	s = open(t, path)
	defer s.Close()
	_, err := s.Certificate(2)
	var fe *boltcheck.Error
	if !errors.Is(err, store.ErrCorrupt) || !errors.As(err, &fe) || fe.Path != path {
		t.Fatalf("got %v", err)
	}
}
