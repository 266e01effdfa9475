package proof

import (
	"errors"
	"fmt"

	"github.com/plugchain/plug/chain/hash"
)

// The state tree is a binary sparse Merkle tree over 256-bit paths, compressed in the
// manner of the Jellyfish Merkle tree: a subtree that holds exactly one key is that
// key's leaf, placed as high as it can go; a subtree holding none is the zero hash;
// an inner node has two children, either of which may be empty. These four functions
// are the whole hashing rule; chain/state builds trees with them and this package
// checks proofs with them, so the two cannot drift apart.

// MaxDepth is the deepest level a leaf can sit at (the path length in bits).
const MaxDepth = 256

// KeyPath returns the tree path of a state key.
func KeyPath(key string) hash.Hash { return hash.Sum(hash.DomainSMTKey, []byte(key)) }

// ValueHash returns the hash of a stored value's bytes.
func ValueHash(value []byte) hash.Hash { return hash.Sum(hash.DomainSMTValue, value) }

// LeafHash returns the hash of the leaf holding path with a value of valueHash.
func LeafHash(path, valueHash hash.Hash) hash.Hash {
	return hash.Sum(hash.DomainSMTLeaf, path[:], valueHash[:])
}

// NodeHash returns the hash of an inner node. Either child may be the zero hash
// (an empty subtree).
func NodeHash(left, right hash.Hash) hash.Hash {
	return hash.Sum(hash.DomainSMTNode, left[:], right[:])
}

// Sentinel errors of proof verification; callers branch on them with errors.Is.
var (
	// ErrProofMalformed: the proof cannot be a proof of anything (bad sizes, depth).
	ErrProofMalformed = errors.New("malformed proof")
	// ErrProofMismatch: the proof is well formed but does not lead to the trusted root.
	ErrProofMismatch = errors.New("proof does not match root")
)

// StateLeaf is a leaf met at the end of a non-membership proof: another key whose
// path shares the proven key's path down to the leaf's depth.
type StateLeaf struct {
	Path      hash.Hash `cbor:"1,keyasint" json:"path"`
	ValueHash hash.Hash `cbor:"2,keyasint" json:"value_hash"`
}

// StateProof proves that a key holds a value, or holds none, in the tree with a given
// root. Siblings are listed from the top of the tree down; empty siblings are left
// out and marked by a zero bit in Present (bit i, most significant first, says
// whether the sibling at depth i is in Siblings).
type StateProof struct {
	Depth    uint16      `cbor:"1,keyasint" json:"depth"`
	Present  []byte      `cbor:"2,keyasint" json:"present"`
	Siblings []hash.Hash `cbor:"3,keyasint" json:"siblings"`
	// Leaf is set only in a non-membership proof that ends on another key's leaf.
	Leaf *StateLeaf `cbor:"4,keyasint,omitempty" json:"leaf,omitempty"`
}

// VerifyMembership checks that key holds value in the tree whose root is root.
func (p *StateProof) VerifyMembership(root hash.Hash, key string, value []byte) error {
	if p.Leaf != nil {
		return fmt.Errorf("%w: membership proof carries a foreign leaf", ErrProofMalformed)
	}
	path := KeyPath(key)
	return p.fold(root, path, LeafHash(path, ValueHash(value)))
}

// VerifyNonMembership checks that key holds no value in the tree whose root is root.
func (p *StateProof) VerifyNonMembership(root hash.Hash, key string) error {
	path := KeyPath(key)
	bottom := hash.Hash{}
	if p.Leaf != nil {
		if p.Leaf.Path == path {
			return fmt.Errorf("%w: the leaf met is the key itself", ErrProofMalformed)
		}
		for i := 0; i < int(p.Depth); i++ {
			if p.Leaf.Path.Bit(i) != path.Bit(i) {
				return fmt.Errorf("%w: the leaf met is off the key's path at depth %d", ErrProofMalformed, i)
			}
		}
		bottom = LeafHash(p.Leaf.Path, p.Leaf.ValueHash)
	}
	return p.fold(root, path, bottom)
}

// fold hashes from the bottom of the proof up to the root along path.
func (p *StateProof) fold(root, path, h hash.Hash) error {
	d := int(p.Depth)
	if d > MaxDepth {
		return fmt.Errorf("%w: depth %d exceeds %d", ErrProofMalformed, d, MaxDepth)
	}
	if len(p.Present) != (d+7)/8 {
		return fmt.Errorf("%w: presence bitmap is %d bytes, want %d", ErrProofMalformed, len(p.Present), (d+7)/8)
	}
	n := 0
	for i := 0; i < d; i++ {
		if p.present(i) {
			n++
		}
	}
	for i := d; i < len(p.Present)*8; i++ {
		if p.present(i) {
			return fmt.Errorf("%w: presence bit set past the depth", ErrProofMalformed)
		}
	}
	if n != len(p.Siblings) {
		return fmt.Errorf("%w: %d siblings marked present, %d given", ErrProofMalformed, n, len(p.Siblings))
	}
	for i := d - 1; i >= 0; i-- {
		var sib hash.Hash
		if p.present(i) {
			n--
			sib = p.Siblings[n]
			if sib.IsZero() {
				return fmt.Errorf("%w: empty sibling marked present", ErrProofMalformed)
			}
		}
		if path.Bit(i) == 0 {
			h = NodeHash(h, sib)
		} else {
			h = NodeHash(sib, h)
		}
	}
	if h != root {
		return ErrProofMismatch
	}
	return nil
}

func (p *StateProof) present(i int) bool { return p.Present[i>>3]>>(7-uint(i&7))&1 == 1 }

// NewStateProof builds a proof from the siblings met on the way down (top first,
// zero hashes for empty siblings); the state tree uses it so the compression rule
// lives in one place.
func NewStateProof(siblings []hash.Hash, leaf *StateLeaf) *StateProof {
	p := &StateProof{Depth: uint16(len(siblings)), Present: make([]byte, (len(siblings)+7)/8), Leaf: leaf}
	for i, s := range siblings {
		if !s.IsZero() {
			p.Present[i>>3] |= 1 << (7 - uint(i&7))
			p.Siblings = append(p.Siblings, s)
		}
	}
	return p
}
