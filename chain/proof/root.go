package proof

import (
	"bytes"
	"slices"
	"sort"

	"github.com/plugchain/plug/chain/hash"
)

// StateLeafOf is one key of a state tree, by its path and value hash, for
// StateRoot.
type StateLeafOf struct {
	Path      hash.Hash
	ValueHash hash.Hash
}

// StateRoot returns the root of the state tree holding exactly leaves (in any
// order; paths must be distinct), built by the same rule chain/state stores: it
// lets a reader of a state export check it against a header's state root without a
// store. It sorts leaves in place.
func StateRoot(leaves []StateLeafOf) hash.Hash {
	slices.SortFunc(leaves, func(a, b StateLeafOf) int { return bytes.Compare(a.Path[:], b.Path[:]) })
	return subRoot(leaves, 0)
}

func subRoot(l []StateLeafOf, depth int) hash.Hash {
	switch len(l) {
	case 0:
		return hash.Hash{}
	case 1:
		return LeafHash(l[0].Path, l[0].ValueHash)
	}
	if depth >= MaxDepth { // two equal paths: not a tree; never produced by a store
		return hash.Hash{}
	}
	k := sort.Search(len(l), func(i int) bool { return l[i].Path.Bit(depth) == 1 })
	return NodeHash(subRoot(l[:k], depth+1), subRoot(l[k:], depth+1))
}
