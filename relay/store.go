package relay

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/crosschain"
)

var (
	bucketScan = []byte("scanned") // chain id -> last scanned height (8 bytes big endian)
	bucketXTx  = []byte("xtx")     // xtx id -> xtxRecord (CBOR)
)

// xtxRecord is what the relay remembers of one XTx.
type xtxRecord struct {
	Signed crosschain.Signed `cbor:"1,keyasint"`
	// Status is the XTx's lifecycle status as last advanced.
	Status crosschain.Status    `cbor:"2,keyasint"`
	Done   []bool               `cbor:"3,keyasint"` // per leg: committed or aborted
	Dec    *crosschain.Decision `cbor:"4,keyasint,omitempty"`
	// Learned is when the relay first saw the XTx (Unix ms).
	Learned int64 `cbor:"5,keyasint"`
	// Final: decided, and every leg finished; the record is then dropped.
	Final bool `cbor:"6,keyasint,omitempty"`

	sigs int8 // every party signed: 0 not checked yet, 1 yes, -1 no
}

// db is the relay's bbolt store.
type db struct{ b *bolt.DB }

func openDB(path string, readOnly bool) (*db, error) {
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: readOnly})
	if err != nil {
		return nil, fmt.Errorf("relay db %s: %w", path, err)
	}
	if !readOnly {
		err = b.Update(func(tx *bolt.Tx) error {
			for _, n := range [][]byte{bucketScan, bucketXTx} {
				if _, err := tx.CreateBucketIfNotExists(n); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Close()
			return nil, err
		}
	}
	return &db{b}, nil
}

func (d *db) Close() error { return d.b.Close() }

// scanned returns the last scanned height of every chain.
func (d *db) scanned() (map[string]uint64, error) {
	out := map[string]uint64{}
	err := d.b.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketScan)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(v) == 8 {
				out[string(k)] = binary.BigEndian.Uint64(v)
			}
			return nil
		})
	})
	return out, err
}

// save writes the chain's scanned height and the given XTx records in one
// transaction, so a restart never skips a block whose XTxs were not stored. A
// finished XTx is deleted instead: only unfinished ones are kept.
func (d *db) save(chain string, height uint64, recs map[hash.Hash]*xtxRecord) error {
	return d.b.Update(func(tx *bolt.Tx) error {
		xb := tx.Bucket(bucketXTx)
		for id, r := range recs {
			if r.Final {
				if err := xb.Delete(id[:]); err != nil {
					return err
				}
				continue
			}
			v, err := encoding.Marshal(r)
			if err != nil {
				return err
			}
			if err := xb.Put(id[:], v); err != nil {
				return err
			}
		}
		if chain == "" {
			return nil
		}
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], height)
		return tx.Bucket(bucketScan).Put([]byte(chain), v[:])
	})
}

// xtxs returns every stored XTx record but finished ones (which a db written
// before they were dropped may hold).
func (d *db) xtxs() (map[hash.Hash]*xtxRecord, error) {
	out := map[hash.Hash]*xtxRecord{}
	err := d.b.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketXTx)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var r xtxRecord
			if err := encoding.UnmarshalLax(v, &r); err != nil {
				return fmt.Errorf("xtx %x: %w", k, err)
			}
			if r.Final {
				return nil
			}
			var id hash.Hash
			copy(id[:], k)
			out[id] = &r
			return nil
		})
	})
	return out, err
}
