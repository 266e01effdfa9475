package crypto

import (
	"crypto/sha256"
	"encoding/binary"

	lru "github.com/hashicorp/golang-lru/v2"
)

// VerifiedCache remembers signatures found valid, so that a signature met again
// is checked once. A crosschain envelope, for example, is executed by every
// candidate block of a height on every validator; its parties' signatures need
// checking only the first time. Only valid verdicts are kept and verification
// is deterministic (ZIP-215), so a hit answers exactly what Verify would: the
// cache changes the cost, never the result. Safe for concurrent use.
type VerifiedCache struct {
	lru *lru.Cache[[32]byte, struct{}]
}

// DefaultCacheSize is the number of verdicts the shared cache keeps (about 5 MiB).
const DefaultCacheSize = 1 << 16

// NewVerifiedCache returns a cache of at most size valid signatures.
func NewVerifiedCache(size int) *VerifiedCache {
	c, err := lru.New[[32]byte, struct{}](max(1, size))
	if err != nil {
		panic(err) // only for a non-positive size
	}
	return &VerifiedCache{lru: c}
}

// sharedCache backs VerifyCached.
var sharedCache = NewVerifiedCache(DefaultCacheSize)

// VerifyCached is Verify through a process-wide VerifiedCache.
func VerifyCached(pub PublicKey, msg, sig []byte) error { return sharedCache.Verify(pub, msg, sig) }

// PrimeCached checks items in one batch (VerifyBatch) through the process-wide
// cache, remembering the valid ones, so that VerifyCached of any of them is
// then a hit. Invalid items are not remembered; VerifyCached reports them.
func PrimeCached(items []Item) { sharedCache.Prime(items) }

// Prime batch-verifies the items not already remembered and remembers the
// valid ones.
func (c *VerifiedCache) Prime(items []Item) {
	var todo []Item
	var keys [][32]byte
	for _, it := range items {
		if k := cacheKey(it.Pub, it.Msg, it.Sig); !c.lru.Contains(k) {
			todo, keys = append(todo, it), append(keys, k)
		}
	}
	for i, err := range VerifyBatch(todo) {
		if err == nil {
			c.lru.Add(keys[i], struct{}{})
		}
	}
}

// Known reports whether c remembers this signature as valid.
func (c *VerifiedCache) Known(pub PublicKey, msg, sig []byte) bool {
	return c.lru.Contains(cacheKey(pub, msg, sig))
}

// Verify is crypto.Verify, answered from the cache when this exact signature
// (scheme, key, message, signature) was found valid before.
func (c *VerifiedCache) Verify(pub PublicKey, msg, sig []byte) error {
	k := cacheKey(pub, msg, sig)
	if c.lru.Contains(k) {
		return nil
	}
	if err := Verify(pub, msg, sig); err != nil {
		return err
	}
	c.lru.Add(k, struct{}{})
	return nil
}

// cacheKey hashes the length-prefixed parts, so no two inputs share a key.
func cacheKey(pub PublicKey, msg, sig []byte) [32]byte {
	h := sha256.New()
	var n [8]byte
	for _, p := range [][]byte{[]byte(pub.Scheme), pub.Key, msg, sig} {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}
