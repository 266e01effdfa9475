package state

// Reading every key of a version (IterateAt) or of the latest state (Iterate).

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/proof"
)

// IterateAt calls fn for every key starting with prefix that version holds, in
// key order, with a copy of its value, reading one consistent snapshot; fn must
// not call Commit. At the latest version it scans the flat view. At an older one
// it reads that version's tree: the leaves hold key paths, not keys, so the keys
// come from the store's record of every key it ever held (the latest keys and
// every key ever deleted, see the "gone" bucket). With a prefix each such key is
// looked up in the tree; without one the whole tree is walked once, its leaves
// matched to keys by path (in memory: the whole state is held, then sorted by
// key). Either way it returns exactly the state of version, even after later
// commits. A key deleted before the store recorded deletions (a file written
// before IterateAt existed) cannot be named: the full walk then fails with
// ErrUnknownKey; a prefixed walk leaves it out. An error from fn stops the walk
// and is returned.
func (s *Store) IterateAt(version uint64, prefix string, fn func(key string, value []byte) error) error {
	if version == 0 {
		return nil
	}
	p := []byte(prefix)
	return s.view(version, func(tx *bolt.Tx) error {
		latest := tx.Bucket(bucketLatest).Cursor()
		seek := func(c *bolt.Cursor) ([]byte, []byte) {
			if len(p) == 0 {
				return c.First()
			}
			return c.Seek(p)
		}
		cur := binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(metaVersion))
		if cur == version {
			for k, v := seek(latest); k != nil && bytes.HasPrefix(k, p); k, v = latest.Next() {
				if err := fn(string(k), bytes.Clone(v)); err != nil {
					return err
				}
			}
			return nil
		}
		r, err := readRoot(tx, version)
		if err != nil {
			return err
		}
		rd := &nodeReader{b: tx.Bucket(bucketNodes), cache: s.cache}
		// Every key the store knows of, in key order: merge the two cursors; a
		// key in both is visited once.
		lk, _ := seek(latest)
		var gone *bolt.Cursor
		var gk []byte
		if b := tx.Bucket(bucketGone); b != nil {
			gone = b.Cursor()
			gk, _ = seek(gone)
		}
		live := func(k []byte) bool { return k != nil && bytes.HasPrefix(k, p) }
		known := func(yield func(key string) error) error {
			for live(lk) || live(gk) {
				var k []byte
				switch c := bytes.Compare(lk, gk); {
				case !live(gk) || live(lk) && c < 0:
					k, lk = lk, nextKey(latest)
				case !live(lk) || c > 0:
					k, gk = gk, nextKey(gone)
				default:
					k, lk, gk = lk, nextKey(latest), nextKey(gone)
				}
				if err := yield(string(k)); err != nil {
					return err
				}
			}
			return nil
		}
		if len(p) > 0 {
			return known(func(key string) error {
				v, found, _, err := rd.lookup(r, key, false)
				if err != nil {
					return fmt.Errorf("state at version %d, key %q: %w", version, key, err)
				}
				if !found {
					return nil
				}
				return fn(key, v)
			})
		}
		type pathKey struct {
			path hash.Hash
			key  string
		}
		var cands []pathKey
		known(func(key string) error {
			cands = append(cands, pathKey{proof.KeyPath(key), key})
			return nil
		})
		slices.SortFunc(cands, func(a, b pathKey) int { return bytes.Compare(a.path[:], b.path[:]) })
		type keyValue struct {
			key   string
			value []byte
		}
		var out []keyValue
		i := 0
		err = rd.walk(r, 0, func(path hash.Hash, value []byte) error {
			for i < len(cands) && bytes.Compare(cands[i].path[:], path[:]) < 0 {
				i++
			}
			if i == len(cands) || cands[i].path != path {
				return fmt.Errorf("state at version %d: %w: a key of path %s (deleted before this store recorded deletions)", version, ErrUnknownKey, path.Short())
			}
			out = append(out, keyValue{cands[i].key, value})
			return nil
		})
		if err != nil {
			return err
		}
		slices.SortFunc(out, func(a, b keyValue) int { return strings.Compare(a.key, b.key) })
		for _, e := range out {
			if err := fn(e.key, e.value); err != nil {
				return err
			}
		}
		return nil
	})
}

// walk calls fn for every leaf under r, in path order, with a copy of its value;
// inner nodes go through the cache, leaves are read (and checked) once each.
func (rd *nodeReader) walk(r ref, depth int, fn func(path hash.Hash, value []byte) error) error {
	switch r.kind {
	case kindEmpty:
		return nil
	case kindLeaf:
		var k [nodeKeyLen]byte
		nodeKey(k[:0], r.v, r.h)
		rec := rd.b.Get(k[:])
		n, err := decodeNode(rec, r.h)
		if err == nil && !n.leaf {
			err = fmt.Errorf("%w: node kind differs from its reference", ErrCorrupt)
		}
		if err != nil {
			return fmt.Errorf("read leaf %s at depth %d: %w", r.h.Short(), depth, err)
		}
		v := rec[leafHeadLen:]
		if proof.ValueHash(v) != n.c[1].h {
			return fmt.Errorf("read leaf %s at depth %d: %w: value does not match its hash", r.h.Short(), depth, ErrCorrupt)
		}
		return fn(n.c[0].h, bytes.Clone(v))
	default:
		if depth >= proof.MaxDepth {
			return fmt.Errorf("%w: tree deeper than %d", ErrCorrupt, proof.MaxDepth)
		}
		n, err := rd.load(r, depth)
		if err != nil {
			return err
		}
		if err := rd.walk(n.c[0], depth+1, fn); err != nil {
			return err
		}
		return rd.walk(n.c[1], depth+1, fn)
	}
}

func nextKey(c *bolt.Cursor) []byte {
	k, _ := c.Next()
	return k
}

// Iterate calls fn for every latest key starting with prefix, in key order, with a
// copy of its value. It reads one consistent snapshot. fn must not call Commit (the
// snapshot's read transaction is open while fn runs). An error from fn stops the
// walk and is returned.
func (s *Store) Iterate(prefix string, fn func(key string, value []byte) error) error {
	p := []byte(prefix)
	return s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLatest).Cursor()
		var k, v []byte
		if len(p) == 0 {
			k, v = c.First()
		} else {
			k, v = c.Seek(p)
		}
		for ; k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			if err := fn(string(k), bytes.Clone(v)); err != nil {
				return err
			}
		}
		return nil
	})
}
