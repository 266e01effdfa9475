package proof

import (
	"fmt"

	"github.com/plugchain/plug/chain/hash"
)

// Ordered lists (a block's transactions, its receipts) are committed to by a binary
// Merkle tree in the manner of RFC 6962: leaves are hashed under their own domain,
// a level with an odd count carries its last node up unchanged, and the empty list
// has the zero root.

// ListLeaf returns the tree leaf of an item whose own hash is item.
func ListLeaf(item hash.Hash) hash.Hash { return hash.Sum(hash.DomainListLeaf, item[:]) }

func listNode(l, r hash.Hash) hash.Hash { return hash.Sum(hash.DomainListNode, l[:], r[:]) }

// ListRoot returns the Merkle root of items (each an item's own hash).
func ListRoot(items []hash.Hash) hash.Hash {
	if len(items) == 0 {
		return hash.Hash{}
	}
	level := make([]hash.Hash, len(items))
	for i, it := range items {
		level[i] = ListLeaf(it)
	}
	for len(level) > 1 {
		next := level[:0]
		for i := 0; i < len(level); i += 2 {
			if i+1 < len(level) {
				next = append(next, listNode(level[i], level[i+1]))
			} else {
				next = append(next, level[i])
			}
		}
		level = next
	}
	return level[0]
}

// ListProof proves that an item sits at Index of a list of Count items.
type ListProof struct {
	Index    uint32      `cbor:"1,keyasint" json:"index"`
	Count    uint32      `cbor:"2,keyasint" json:"count"`
	Siblings []hash.Hash `cbor:"3,keyasint" json:"siblings"`
}

// NewListProof builds the proof of items[index].
func NewListProof(items []hash.Hash, index int) (*ListProof, error) {
	if index < 0 || index >= len(items) {
		return nil, fmt.Errorf("%w: index %d of %d items", ErrProofMalformed, index, len(items))
	}
	p := &ListProof{Index: uint32(index), Count: uint32(len(items))}
	level := make([]hash.Hash, len(items))
	for i, it := range items {
		level[i] = ListLeaf(it)
	}
	for len(level) > 1 {
		if sib := index ^ 1; sib < len(level) {
			p.Siblings = append(p.Siblings, level[sib])
		}
		next := make([]hash.Hash, 0, (len(level)+1)/2)
		for i := 0; i < len(level); i += 2 {
			if i+1 < len(level) {
				next = append(next, listNode(level[i], level[i+1]))
			} else {
				next = append(next, level[i])
			}
		}
		level, index = next, index/2
	}
	return p, nil
}

// Verify checks that item sits at p.Index of the list whose root is root.
func (p *ListProof) Verify(root, item hash.Hash) error {
	if p.Count == 0 || p.Index >= p.Count {
		return fmt.Errorf("%w: index %d of %d items", ErrProofMalformed, p.Index, p.Count)
	}
	h := ListLeaf(item)
	idx, n, used := int(p.Index), int(p.Count), 0
	for n > 1 {
		if sib := idx ^ 1; sib < n {
			if used >= len(p.Siblings) {
				return fmt.Errorf("%w: too few siblings", ErrProofMalformed)
			}
			if idx&1 == 0 {
				h = listNode(h, p.Siblings[used])
			} else {
				h = listNode(p.Siblings[used], h)
			}
			used++
		}
		idx, n = idx/2, (n+1)/2
	}
	if used != len(p.Siblings) {
		return fmt.Errorf("%w: %d siblings left over", ErrProofMalformed, len(p.Siblings)-used)
	}
	if h != root {
		return ErrProofMismatch
	}
	return nil
}
