package state

import (
	"bytes"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/proof"
)

// Verification is what Verify found about the latest version.
type Verification struct {
	Version  uint64    `json:"version"`
	Root     hash.Hash `json:"root"`      // the root recorded for Version
	FlatRoot hash.Hash `json:"flat_root"` // the root recomputed from the latest key/values
	Keys     int       `json:"keys"`      // key/values in the flat view
	Leaves   int       `json:"leaves"`    // leaves of the tree
	Nodes    int       `json:"nodes"`     // tree nodes read (each checked against its hash)
}

// Verify checks the latest version end to end in one read transaction: it walks
// the version's tree from its recorded root, checking that every node hashes to
// the reference its parent holds and every leaf's value to its value hash; it
// recomputes the root from the flat view of the latest key/values (the view
// that Get reads) by the hashing rule of docs/state-tree.md; and it checks that
// both agree with the recorded root and that tree and flat view hold the same
// keys. The first disagreement is an ErrCorrupt error. progress, if not nil, is
// called now and then with the number of nodes and keys read.
func (s *Store) Verify(progress func(read int)) (*Verification, error) {
	v := &Verification{}
	tick := func() {
		if progress != nil && (v.Nodes+v.Keys)%8192 == 0 {
			progress(v.Nodes + v.Keys)
		}
	}
	err := s.guard(func(tx *bolt.Tx) error {
		v.Version = s.Version()
		root, err := readRoot(tx, v.Version)
		if err != nil {
			return err
		}
		v.Root = root.h
		type leaf struct{ path, vh hash.Hash }
		var tree []leaf
		rd := &nodeReader{b: tx.Bucket(bucketNodes), cache: newNodeCache(0)}
		var walk func(r ref, depth int) error
		walk = func(r ref, depth int) error {
			if r.empty() {
				return nil
			}
			if depth > proof.MaxDepth {
				return fmt.Errorf("%w: tree deeper than %d", ErrCorrupt, proof.MaxDepth)
			}
			n, err := rd.load(r, depth) // checks the node against r's hash
			v.Nodes++
			tick()
			if err != nil {
				return err
			}
			if n.leaf {
				if _, err := rd.value(r, n.c[1].h, depth); err != nil {
					return err
				}
				tree = append(tree, leaf{n.c[0].h, n.c[1].h})
				return nil
			}
			if err := walk(n.c[0], depth+1); err != nil {
				return err
			}
			return walk(n.c[1], depth+1)
		}
		if err := walk(root, 0); err != nil {
			return fmt.Errorf("tree of version %d: %w", v.Version, err)
		}
		v.Leaves = len(tree)

		var flat []leaf
		c := tx.Bucket(bucketLatest).Cursor()
		for k, val := c.First(); k != nil; k, val = c.Next() {
			flat = append(flat, leaf{proof.KeyPath(string(k)), proof.ValueHash(val)})
			v.Keys++
			tick()
		}
		slices.SortFunc(flat, func(a, b leaf) int { return bytes.Compare(a.path[:], b.path[:]) })
		paths := make([]hash.Hash, len(flat))
		vhs := make([]hash.Hash, len(flat))
		for i, l := range flat {
			paths[i], vhs[i] = l.path, l.vh
		}
		v.FlatRoot = rootOf(paths, vhs, 0)
		if v.FlatRoot != v.Root {
			return fmt.Errorf("%w: the latest key/values (%d keys) hash to root %s, but version %d's root is %s (%d leaves)",
				ErrCorrupt, v.Keys, v.FlatRoot.Short(), v.Version, v.Root.Short(), v.Leaves)
		}
		// The walk visits leaves in path order, so equal roots with equal
		// leaves is the expected case; a mismatch here means a hash collision
		// or a bug, reported all the same.
		if len(tree) != len(flat) || !slices.Equal(tree, flat) {
			return fmt.Errorf("%w: tree and latest key/values differ", ErrCorrupt)
		}
		return nil
	})
	if progress != nil {
		progress(v.Nodes + v.Keys)
	}
	if err != nil {
		return v, err
	}
	return v, nil
}

// rootOf is the root of the subtree at depth over the leaves (paths[i],
// vhs[i]), sorted by path and sharing their first depth bits: the hashing rule
// of docs/state-tree.md, computed from scratch.
func rootOf(paths, vhs []hash.Hash, depth int) hash.Hash {
	switch len(paths) {
	case 0:
		return hash.Hash{}
	case 1:
		return leafHash(paths[0], vhs[0])
	}
	i, _ := slices.BinarySearchFunc(paths, 1, func(p hash.Hash, _ int) int {
		return int(p.Bit(depth)) - 1
	})
	return nodeHash(rootOf(paths[:i], vhs[:i], depth+1), rootOf(paths[i:], vhs[i:], depth+1))
}
