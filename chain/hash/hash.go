// Package hash holds PLUG's hash type and its domain-separated SHA-256.
//
// Every hash in PLUG is taken under a domain tag, so that a header, a transaction,
// a vote or a tree node can never hash alike even when their bytes do. All domain
// tags are declared here, in one place, so their uniqueness can be seen at a glance.
package hash

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Size is the length of a Hash in bytes.
const Size = sha256.Size

// Hash is a SHA-256 digest taken under a domain tag.
type Hash [Size]byte

// Domain tags. A tag is written, length-prefixed, before the hashed bytes.
const (
	DomainTx           = "plug/tx"            // transaction body (what signers sign)
	DomainTxID         = "plug/tx-id"         // whole transaction including proofs
	DomainHeader       = "plug/header"        // block header
	DomainVote         = "plug/vote"          // consensus vote
	DomainProposal     = "plug/proposal"      // consensus block proposal
	DomainValidatorSet = "plug/validator-set" // validator set
	DomainAddress      = "plug/address"       // account address from a public key
	DomainSMTKey       = "plug/smt/key"       // state key -> tree path
	DomainSMTValue     = "plug/smt/value"     // state value
	DomainSMTLeaf      = "plug/smt/leaf"      // state tree leaf
	DomainSMTNode      = "plug/smt/node"      // state tree inner node
	DomainListLeaf     = "plug/list/leaf"     // ordered-list Merkle tree leaf (txs, receipts)
	DomainListNode     = "plug/list/node"     // ordered-list Merkle tree inner node
	DomainReceipt      = "plug/receipt"       // transaction receipt
	DomainGenesis      = "plug/genesis"       // genesis document
	DomainXTx          = "plug/xtx"           // crosschain transaction
)

// ErrBadHash reports a hash that is not 32 bytes of hex.
var ErrBadHash = errors.New("bad hash")

// Sum hashes the concatenation of parts under domain.
func Sum(domain string, parts ...[]byte) Hash {
	if len(domain) > 255 {
		panic("hash: domain tag longer than 255 bytes")
	}
	// Fast path for the tree hashes: one stack buffer, no allocation.
	var buf [160]byte
	n := 1 + len(domain)
	for _, p := range parts {
		n += len(p)
	}
	var b []byte
	if n <= len(buf) {
		b = buf[:0]
	} else {
		b = make([]byte, 0, n)
	}
	b = append(b, byte(len(domain)))
	b = append(b, domain...)
	for _, p := range parts {
		b = append(b, p...)
	}
	return sha256.Sum256(b)
}

// IsZero reports whether h is the all-zero hash (used for "empty").
func (h Hash) IsZero() bool { return h == Hash{} }

// String returns h in lower-case hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Short returns the first 8 hex digits of h, for logs.
func (h Hash) Short() string { return hex.EncodeToString(h[:4]) }

// MarshalText encodes h as hex (used by JSON).
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes hex into h.
func (h *Hash) UnmarshalText(b []byte) error {
	p, err := Parse(string(b))
	if err != nil {
		return err
	}
	*h = p
	return nil
}

// Parse decodes a 64-digit hex string.
func Parse(s string) (Hash, error) {
	var h Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != Size {
		return h, fmt.Errorf("%w: %q is not 64 hex digits", ErrBadHash, s)
	}
	copy(h[:], b)
	return h, nil
}

// Bit returns bit i (0 = most significant bit of byte 0) of h; the state tree walks
// paths in this order.
func (h Hash) Bit(i int) int {
	return int(h[i>>3]>>(7-uint(i&7))) & 1
}
