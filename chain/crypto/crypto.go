// Package crypto holds PLUG's pluggable signature schemes: the key and address
// types, a registry of schemes, and single and bulk (batched, multi-core)
// signature verification.
//
// Two schemes are built in: Ed25519 (the default, verified under the ZIP-215
// rules) and ECDSA P-256 (for legacy PKI). Applications may Register more.
//
// Consensus depends on one property above all: for every scheme, VerifyBatch
// accepts an item if and only if Verify accepts it. Both paths of a scheme use
// one rule set, and the tests check their agreement item by item.
package crypto

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"

	"github.com/plugchain/plug/chain/hash"
)

// SchemeID names a signature scheme, e.g. "ed25519".
type SchemeID string

// Built-in scheme identifiers.
const (
	Ed25519 SchemeID = "ed25519" // Ed25519, ZIP-215 verification (default)
	P256    SchemeID = "p256"    // ECDSA over NIST P-256 and SHA-256, low-S r||s
)

// Sentinel errors; every error returned by this package wraps one of them.
var (
	ErrBadSignature  = errors.New("bad signature")
	ErrBadPublicKey  = errors.New("bad public key")
	ErrBadPrivateKey = errors.New("bad private key")
	ErrUnknownScheme = errors.New("unknown signature scheme")
	ErrBadAddress    = errors.New("bad address")
)

// PublicKey is a public key tagged with its scheme.
type PublicKey struct {
	Scheme SchemeID `cbor:"1,keyasint" json:"scheme"`
	Key    []byte   `cbor:"2,keyasint" json:"key"`
}

// Address derives the account address of p: the first 20 bytes of
// hash.Sum(hash.DomainAddress, scheme, 0x00, key). The scheme is hashed in, so
// keys of two schemes never share an address.
func (p PublicKey) Address() Address {
	h := hash.Sum(hash.DomainAddress, []byte(p.Scheme), []byte{0}, p.Key)
	var a Address
	copy(a[:], h[:AddressSize])
	return a
}

// Equal reports whether p and q are the same scheme and key bytes.
func (p PublicKey) Equal(q PublicKey) bool {
	return p.Scheme == q.Scheme && string(p.Key) == string(q.Key)
}

// String returns "scheme:hexkey", for logs.
func (p PublicKey) String() string {
	return string(p.Scheme) + ":" + hex.EncodeToString(p.Key)
}

// AddressSize is the length of an Address in bytes.
const AddressSize = 20

// Address identifies an account; it is derived from a PublicKey.
type Address [AddressSize]byte

// String returns a in lower-case hex (40 digits).
func (a Address) String() string { return hex.EncodeToString(a[:]) }

// IsZero reports whether a is the all-zero address.
func (a Address) IsZero() bool { return a == Address{} }

// MarshalText encodes a as lower-case hex (used by JSON).
func (a Address) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText decodes 40 hex digits into a.
func (a *Address) UnmarshalText(b []byte) error {
	p, err := ParseAddress(string(b))
	if err != nil {
		return err
	}
	*a = p
	return nil
}

// ParseAddress decodes a 40-digit hex string (either case).
func ParseAddress(s string) (Address, error) {
	var a Address
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != AddressSize {
		return a, fmt.Errorf("%w: %q is not 40 hex digits", ErrBadAddress, s)
	}
	copy(a[:], b)
	return a, nil
}

// PrivateKey is a signing key of some scheme.
type PrivateKey interface {
	// Public returns the matching public key.
	Public() PublicKey
	// Sign signs msg. Built-in schemes sign deterministically.
	Sign(msg []byte) ([]byte, error)
	// Bytes returns the key's storable form (ed25519: 32-byte seed, p256:
	// 32-byte scalar), accepted back by Scheme.PrivateKeyFromBytes.
	Bytes() []byte
}

// Item is one signature to verify in a batch.
type Item struct {
	Pub PublicKey // signer
	Msg []byte    // signed bytes
	Sig []byte    // signature
}

// Scheme is one signature scheme. Implementations must be safe for concurrent
// use, and VerifyBatch must agree with Verify on every item.
type Scheme interface {
	// ID returns the scheme's identifier.
	ID() SchemeID
	// Generate makes a new key from rand (deterministic given rand's bytes).
	Generate(rand io.Reader) (PrivateKey, error)
	// PrivateKeyFromBytes restores a key from PrivateKey.Bytes.
	PrivateKeyFromBytes(b []byte) (PrivateKey, error)
	// Verify checks sig over msg by the raw key pub; nil means valid.
	Verify(pub, msg, sig []byte) error
	// VerifyBatch checks items (all of this scheme) and returns one result
	// per item, nil meaning valid.
	VerifyBatch(items []Item) []error
}

var registry = struct {
	sync.RWMutex
	m map[SchemeID]Scheme
}{m: map[SchemeID]Scheme{}}

// Register adds s to the registry. It panics if s is nil, has an empty ID, or
// its ID is already registered.
func Register(s Scheme) {
	if s == nil || s.ID() == "" {
		panic("crypto: Register of nil scheme or empty scheme ID")
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.m[s.ID()]; dup {
		panic("crypto: scheme " + string(s.ID()) + " registered twice")
	}
	registry.m[s.ID()] = s
}

// Lookup returns the registered scheme id, or an error wrapping ErrUnknownScheme.
func Lookup(id SchemeID) (Scheme, error) {
	registry.RLock()
	s, ok := registry.m[id]
	registry.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownScheme, id)
	}
	return s, nil
}

// Schemes returns the registered scheme IDs, sorted.
func Schemes() []SchemeID {
	registry.RLock()
	ids := make([]SchemeID, 0, len(registry.m))
	for id := range registry.m {
		ids = append(ids, id)
	}
	registry.RUnlock()
	slices.Sort(ids)
	return ids
}

// GenerateKey makes a new key of scheme id from rand.
func GenerateKey(id SchemeID, rand io.Reader) (PrivateKey, error) {
	s, err := Lookup(id)
	if err != nil {
		return nil, err
	}
	return s.Generate(rand)
}

// PrivateKeyFromBytes restores a key of scheme id from PrivateKey.Bytes.
func PrivateKeyFromBytes(id SchemeID, b []byte) (PrivateKey, error) {
	s, err := Lookup(id)
	if err != nil {
		return nil, err
	}
	return s.PrivateKeyFromBytes(b)
}

// Verify checks sig over msg by pub. It returns nil if the signature is valid,
// else an error wrapping ErrBadSignature, ErrBadPublicKey or ErrUnknownScheme.
func Verify(pub PublicKey, msg, sig []byte) error {
	s, err := Lookup(pub.Scheme)
	if err != nil {
		return err
	}
	return s.Verify(pub.Key, msg, sig)
}

// minChunk is the smallest slice of a scheme's items handed to one goroutine:
// below it, goroutine start-up and a small batch equation cost more than they save.
const minChunk = 32

// VerifyBatch checks many signatures at once and returns one result per item,
// nil meaning valid; result i is nil exactly when Verify(items[i]...) is nil.
// Items are grouped by scheme, and each group is split into chunks verified
// in parallel over runtime.GOMAXPROCS goroutines.
func VerifyBatch(items []Item) []error {
	res := make([]error, len(items))
	if len(items) == 0 {
		return res
	}
	procs := runtime.GOMAXPROCS(0)

	// Group item indices by scheme, in order of first appearance.
	type group struct {
		scheme Scheme
		idx    []int
	}
	var groups []*group
	byID := map[SchemeID]*group{}
	for i := range items {
		id := items[i].Pub.Scheme
		g, ok := byID[id]
		if !ok {
			s, err := Lookup(id)
			if err != nil {
				res[i] = err
				continue
			}
			g = &group{scheme: s}
			byID[id] = g
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
	}

	// Split each group into at most procs chunks of at least minChunk items.
	type task struct {
		scheme Scheme
		idx    []int
	}
	var tasks []task
	for _, g := range groups {
		n := len(g.idx)
		chunks := min(procs, (n+minChunk-1)/minChunk)
		for c := range chunks {
			lo, hi := c*n/chunks, (c+1)*n/chunks
			tasks = append(tasks, task{g.scheme, g.idx[lo:hi]})
		}
	}

	run := func(t task) {
		sub := make([]Item, len(t.idx))
		for j, i := range t.idx {
			sub[j] = items[i]
		}
		out := t.scheme.VerifyBatch(sub)
		for j, i := range t.idx {
			if j < len(out) {
				res[i] = out[j]
			} else {
				res[i] = fmt.Errorf("%w: scheme %s returned %d results for %d items",
					ErrBadSignature, t.scheme.ID(), len(out), len(sub))
			}
		}
	}
	if len(tasks) == 1 {
		run(tasks[0])
		return res
	}
	var wg sync.WaitGroup
	next := make(chan task, len(tasks))
	for _, t := range tasks {
		next <- t
	}
	close(next)
	for range min(procs, len(tasks)) {
		wg.Go(func() {
			for t := range next {
				run(t)
			}
		})
	}
	wg.Wait()
	return res
}

// serialBatch verifies items one by one with verify; schemes without a batch
// equation use it from VerifyBatch.
func serialBatch(items []Item, verify func(pub, msg, sig []byte) error) []error {
	res := make([]error, len(items))
	for i, it := range items {
		res[i] = verify(it.Pub.Key, it.Msg, it.Sig)
	}
	return res
}
