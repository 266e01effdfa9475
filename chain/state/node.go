package state

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/proof"
)

// Node kinds, as written in a reference and in a node's first byte.
const (
	kindEmpty = 0
	kindLeaf  = 'L'
	kindInner = 'I'
)

// ref points at a stored node: its hash, the version under which it was written
// (the first half of its bbolt key) and its kind, so that a parent knows whether a
// child is a leaf without loading it.
type ref struct {
	h    hash.Hash
	v    uint64
	kind byte
}

func (r ref) empty() bool { return r.kind == kindEmpty }

// node is a decoded tree node. For an inner node c[0] and c[1] are the children.
// For a leaf c[0].h is the key path and c[1].h the value hash (the value itself is
// stored in the leaf's record but not kept in memory).
type node struct {
	c    [2]ref
	leaf bool
}

const (
	nodeKeyLen   = 8 + hash.Size
	innerRecLen  = 1 + 2*(1+hash.Size+8)
	leafHeadLen  = 1 + 2*hash.Size
	refRecLen    = 1 + hash.Size + 8
	rootRecLen   = refRecLen
	versionBytes = 8
)

// nodeKey is the bbolt key of a node: version (big endian) then hash, so that the
// nodes of one commit are appended, in order, after all earlier ones.
func nodeKey(dst []byte, v uint64, h hash.Hash) []byte {
	dst = binary.BigEndian.AppendUint64(dst, v)
	return append(dst, h[:]...)
}

func putRef(dst []byte, r ref) {
	dst[0] = r.kind
	copy(dst[1:], r.h[:])
	binary.BigEndian.PutUint64(dst[1+hash.Size:], r.v)
}

func getRef(src []byte) (ref, error) {
	var r ref
	r.kind = src[0]
	copy(r.h[:], src[1:1+hash.Size])
	r.v = binary.BigEndian.Uint64(src[1+hash.Size:])
	switch r.kind {
	case kindEmpty:
		if !r.h.IsZero() || r.v != 0 {
			return r, fmt.Errorf("%w: non-zero empty reference", ErrCorrupt)
		}
	case kindLeaf, kindInner:
		if r.h.IsZero() {
			return r, fmt.Errorf("%w: zero hash in a non-empty reference", ErrCorrupt)
		}
	default:
		return r, fmt.Errorf("%w: unknown reference kind %d", ErrCorrupt, r.kind)
	}
	return r, nil
}

// encodeInner writes the record of an inner node:
// 'I' | left kind | left hash | left version | right kind | right hash | right version.
func encodeInner(dst []byte, n *node) {
	dst[0] = kindInner
	putRef(dst[1:], n.c[0])
	putRef(dst[1+refRecLen:], n.c[1])
}

// encodeLeaf writes the record of a leaf: 'L' | path | value hash | value bytes.
func encodeLeaf(dst []byte, path, vh hash.Hash, value []byte) {
	dst[0] = kindLeaf
	copy(dst[1:], path[:])
	copy(dst[1+hash.Size:], vh[:])
	copy(dst[leafHeadLen:], value)
}

// decodeNode parses a stored record and checks it against the hash it is stored
// under, so a damaged file is reported rather than silently trusted.
func decodeNode(rec []byte, h hash.Hash) (node, error) {
	var n node
	if len(rec) == 0 {
		return n, fmt.Errorf("%w: empty node record", ErrCorrupt)
	}
	switch rec[0] {
	case kindInner:
		if len(rec) != innerRecLen {
			return n, fmt.Errorf("%w: inner node record is %d bytes", ErrCorrupt, len(rec))
		}
		var err error
		if n.c[0], err = getRef(rec[1:]); err != nil {
			return n, err
		}
		if n.c[1], err = getRef(rec[1+refRecLen:]); err != nil {
			return n, err
		}
		if n.c[0].empty() && n.c[1].kind != kindInner || n.c[1].empty() && n.c[0].kind != kindInner {
			return n, fmt.Errorf("%w: inner node with fewer than two leaves below", ErrCorrupt)
		}
		if nodeHash(n.c[0].h, n.c[1].h) != h {
			return n, fmt.Errorf("%w: inner node does not hash to its key", ErrCorrupt)
		}
	case kindLeaf:
		if len(rec) < leafHeadLen {
			return n, fmt.Errorf("%w: leaf record is %d bytes", ErrCorrupt, len(rec))
		}
		n.leaf = true
		copy(n.c[0].h[:], rec[1:])
		copy(n.c[1].h[:], rec[1+hash.Size:])
		if leafHash(n.c[0].h, n.c[1].h) != h {
			return n, fmt.Errorf("%w: leaf does not hash to its key", ErrCorrupt)
		}
	default:
		return n, fmt.Errorf("%w: unknown node kind %d", ErrCorrupt, rec[0])
	}
	return n, nil
}

// nodeCache is a bounded, sharded, two-generation cache of decoded nodes keyed by
// hash (a hash names one content, whichever version stored it). Each shard keeps a
// hot and a cold map; when the hot map is full it becomes the cold one and the old
// cold map is dropped. A hit in the cold map is promoted. This approximates LRU with
// no per-entry bookkeeping and no per-node allocation.
type nodeCache struct {
	shards []cacheShard
	per    int // entries per generation per shard
}

type cacheShard struct {
	mu        sync.Mutex
	hot, cold map[hash.Hash]node
	_         [40]byte // keep shards' mutexes on separate cache lines
}

const cacheShards = 64

func newNodeCache(capacity int) *nodeCache {
	if capacity <= 0 {
		return nil
	}
	per := capacity / cacheShards / 2
	if per < 1 {
		per = 1
	}
	c := &nodeCache{shards: make([]cacheShard, cacheShards), per: per}
	for i := range c.shards {
		c.shards[i].hot = make(map[hash.Hash]node)
	}
	return c
}

func (c *nodeCache) shard(h hash.Hash) *cacheShard {
	// Hashes are uniform: their last byte is as good a shard index as any.
	return &c.shards[int(h[hash.Size-1])%cacheShards]
}

func (c *nodeCache) get(h hash.Hash) (node, bool) {
	if c == nil {
		return node{}, false
	}
	s := c.shard(h)
	s.mu.Lock()
	n, ok := s.hot[h]
	if !ok {
		if n, ok = s.cold[h]; ok {
			c.insertLocked(s, h, n)
		}
	}
	s.mu.Unlock()
	return n, ok
}

func (c *nodeCache) put(h hash.Hash, n node) {
	if c == nil {
		return
	}
	s := c.shard(h)
	s.mu.Lock()
	c.insertLocked(s, h, n)
	s.mu.Unlock()
}

func (c *nodeCache) insertLocked(s *cacheShard, h hash.Hash, n node) {
	if len(s.hot) >= c.per {
		s.cold = s.hot
		s.hot = make(map[hash.Hash]node, c.per/4)
	}
	s.hot[h] = n
}

// leafHash and nodeHash are chain/proof's hashing rule, named here for brevity.
func leafHash(path, vh hash.Hash) hash.Hash { return proof.LeafHash(path, vh) }
func nodeHash(l, r hash.Hash) hash.Hash     { return proof.NodeHash(l, r) }
