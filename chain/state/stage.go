package state

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"sync"

	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/proof"
)

// Change sets Key to Value, or removes Key when Delete is set (Value is then
// ignored). Deleting a key that is absent is not an error.
type Change struct {
	Key    string
	Value  []byte
	Delete bool
}

// Batch is a staged, uncommitted version: its root is known, nothing is written
// until Store.Commit. It is immutable, so Root and Version may be read anywhere.
type Batch struct {
	s         *Store
	base      uint64
	version   uint64
	root      ref
	items     []item  // the effective changes, one per key, by path
	nodes     nodeBuf // nodes created by this version
	arena     []byte  // copies of the values
	committed bool
}

// Root is the state root the batch will have once committed.
func (b *Batch) Root() hash.Hash { return b.root.h }

// Version is the version the batch will be committed as (its base + 1).
func (b *Batch) Version() uint64 { return b.version }

// Len is the number of distinct keys the batch changes.
func (b *Batch) Len() int { return len(b.items) }

type item struct {
	path  hash.Hash
	vh    hash.Hash
	key   string
	value []byte
	idx   int
	pos   int32 // index in Batch.items
	del   bool
	old   ref // set when the item is an existing leaf kept as is
}

// newNode is a node created by a batch; a leaf's value is Batch.items[pos].value.
// It holds no pointers, so millions of them cost the garbage collector nothing.
type newNode struct {
	h   hash.Hash
	n   node
	pos int32
}

// sortKey orders things by a 64-bit prefix of a hash, pointing back at them by
// index (items) or by chunk and offset (nodes).
type sortKey struct {
	pre  uint64
	i, j int32
}

// nodeBuf collects new nodes in fixed-size chunks: appending never copies what is
// already there, which matters when a batch creates millions of nodes.
type nodeBuf struct {
	chunks [][]newNode
	n      int
}

const nodeChunk = 4096

func (nb *nodeBuf) add(nn newNode) {
	if len(nb.chunks) == 0 || len(nb.chunks[len(nb.chunks)-1]) == nodeChunk {
		nb.chunks = append(nb.chunks, make([]newNode, 0, nodeChunk))
	}
	last := &nb.chunks[len(nb.chunks)-1]
	*last = append(*last, nn)
	nb.n++
}

func (nb *nodeBuf) join(o *nodeBuf) {
	nb.chunks = append(nb.chunks, o.chunks...)
	nb.n += o.n
}

func (nb *nodeBuf) at(k sortKey) *newNode { return &nb.chunks[k.i][k.j] }

// Parallelism: subtrees at depth < parDepth whose both halves carry at least
// parMin changes are updated on separate goroutines. The split depends only on the
// data, and results are joined in a fixed order, so roots are deterministic.
const parMin = 2048

var parDepth = func() int {
	d := 0
	for 1<<d < runtime.GOMAXPROCS(0) {
		d++
	}
	return d + 1
}()

// Stage computes the version that applying changes to the latest version would
// produce, without writing anything. Changes may come in any order; when one key
// appears several times, the last change wins. Values are copied, so the caller may
// reuse its buffers.
func (s *Store) Stage(changes []Change) (*Batch, error) {
	size := 0
	for i := range changes {
		c := &changes[i]
		switch {
		case c.Key == "":
			return nil, fmt.Errorf("change %d: %w", i, ErrEmptyKey)
		case len(c.Key) > s.opts.maxKeySize:
			return nil, fmt.Errorf("change %d: key of %d bytes: %w (limit %d)", i, len(c.Key), ErrKeyTooLarge, s.opts.maxKeySize)
		case !c.Delete && len(c.Value) > s.opts.maxValueSize:
			return nil, fmt.Errorf("change %d (key %q): value of %d bytes: %w (limit %d)", i, c.Key, len(c.Value), ErrValueTooLarge, s.opts.maxValueSize)
		}
		if !c.Delete {
			size += len(c.Value)
		}
	}
	base, root := s.head()
	b := &Batch{s: s, base: base, version: base + 1, arena: make([]byte, 0, size)}

	items := make([]item, len(changes))
	for i := range changes {
		c := &changes[i]
		it := &items[i]
		it.key, it.idx, it.del = c.Key, i, c.Delete
		if !c.Delete {
			b.arena = append(b.arena, c.Value...)
			it.value = b.arena[len(b.arena)-len(c.Value) : len(b.arena) : len(b.arena)]
		}
	}
	parallel(len(items), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			it := &items[i]
			it.path = proof.KeyPath(it.key)
			if !it.del {
				it.vh = proof.ValueHash(it.value)
			}
		}
	})
	// Sort small (path prefix, index) pairs rather than the items themselves; ties
	// on the prefix fall back to the full path, then to the change's position.
	order := make([]sortKey, len(items))
	for i := range items {
		order[i] = sortKey{pre: binary.BigEndian.Uint64(items[i].path[:8]), i: int32(i)}
	}
	slices.SortFunc(order, func(x, y sortKey) int {
		if x.pre != y.pre {
			return cmp.Compare(x.pre, y.pre)
		}
		if c := bytes.Compare(items[x.i].path[:], items[y.i].path[:]); c != 0 {
			return c
		}
		return cmp.Compare(x.i, y.i)
	})
	// Gather in path order; the last change of a key wins.
	sorted := make([]item, 0, len(items))
	for j, o := range order {
		if j+1 < len(order) && items[order[j+1].i].path == items[o.i].path {
			continue
		}
		it := items[o.i]
		it.pos = int32(len(sorted))
		sorted = append(sorted, it)
	}
	items = sorted
	b.items = items

	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("stage on version %d: %w", base, err)
	}
	defer tx.Rollback()
	st := &stager{rd: &nodeReader{b: tx.Bucket(bucketNodes), cache: s.cache}, version: b.version}
	t := &task{st: st}
	b.root, err = t.update(root, 0, items)
	if err != nil {
		return nil, fmt.Errorf("stage on version %d: %w", base, err)
	}
	b.nodes = t.out
	return b, nil
}

// parallel runs fn over [0,n) split in two halves when n is large enough.
func parallel(n int, fn func(lo, hi int)) {
	if n < 4096 || runtime.GOMAXPROCS(0) < 2 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); fn(0, n/2) }()
	fn(n/2, n)
	wg.Wait()
}

type stager struct {
	rd      *nodeReader
	version uint64
}

// task is one goroutine's share of a Stage: it collects the nodes it creates.
type task struct {
	st  *stager
	out nodeBuf
}

// split returns the index of the first item whose path has bit depth set; items
// share their first depth bits and are sorted, so that bit is sorted too.
func split(items []item, depth int) int {
	return sort.Search(len(items), func(i int) bool { return items[i].path.Bit(depth) == 1 })
}

// update applies items (sorted, distinct paths, all under the subtree r at depth)
// to r and returns the new subtree. Untouched subtrees are shared, not copied.
func (t *task) update(r ref, depth int, items []item) (ref, error) {
	if len(items) == 0 {
		return r, nil
	}
	switch r.kind {
	case kindEmpty:
		return t.build(depth, liveItems(items))
	case kindLeaf:
		n, err := t.st.rd.load(r, depth)
		if err != nil {
			return ref{}, err
		}
		p := n.c[0].h
		if len(items) == 1 && items[0].path == p { // the common case: update in place
			switch {
			case items[0].del:
				return ref{}, nil
			case items[0].vh == n.c[1].h:
				return r, nil
			}
			return t.leaf(&items[0]), nil
		}
		merged := make([]item, 0, len(items)+1)
		placed := false
		for i := range items {
			it := &items[i]
			c := bytes.Compare(it.path[:], p[:])
			if c > 0 && !placed {
				merged = append(merged, item{path: p, old: r})
				placed = true
			}
			if c == 0 {
				placed = true
				if it.del {
					continue
				}
				if it.vh == n.c[1].h {
					merged = append(merged, item{path: p, old: r})
					continue
				}
			}
			if !it.del {
				merged = append(merged, *it)
			}
		}
		if !placed {
			merged = append(merged, item{path: p, old: r})
		}
		return t.build(depth, merged)
	case kindInner:
		if depth >= proof.MaxDepth {
			return ref{}, fmt.Errorf("%w: tree deeper than %d", ErrCorrupt, proof.MaxDepth)
		}
		n, err := t.st.rd.load(r, depth)
		if err != nil {
			return ref{}, err
		}
		k := split(items, depth)
		l, rr := n.c[0], n.c[1]
		err = t.both(depth, k, len(items),
			func(t *task) (err error) {
				if k > 0 {
					l, err = t.update(n.c[0], depth+1, items[:k])
				}
				return err
			},
			func(t *task) (err error) {
				if k < len(items) {
					rr, err = t.update(n.c[1], depth+1, items[k:])
				}
				return err
			})
		if err != nil {
			return ref{}, err
		}
		if l == n.c[0] && rr == n.c[1] {
			return r, nil
		}
		return t.inner(l, rr), nil
	}
	return ref{}, fmt.Errorf("%w: reference of kind %d", ErrCorrupt, r.kind)
}

// both runs left and right, on two goroutines when the subtree is near the top and
// both sides carry enough work; the left side's nodes are appended first.
func (t *task) both(depth, k, n int, left, right func(*task) error) error {
	if depth >= parDepth || k < parMin || n-k < parMin {
		if err := left(t); err != nil {
			return err
		}
		return right(t)
	}
	lt := &task{st: t.st}
	var lerr error
	done := make(chan struct{})
	go func() { defer close(done); lerr = left(lt) }()
	rerr := right(t)
	<-done
	t.out.join(&lt.out)
	if lerr != nil {
		return lerr
	}
	return rerr
}

// build makes the canonical subtree at depth holding exactly items (none deleted).
func (t *task) build(depth int, items []item) (ref, error) {
	switch len(items) {
	case 0:
		return ref{}, nil
	case 1:
		if items[0].old.kind == kindLeaf {
			return items[0].old, nil
		}
		return t.leaf(&items[0]), nil
	}
	if depth >= proof.MaxDepth {
		return ref{}, fmt.Errorf("%w: two items share a full path", ErrCorrupt)
	}
	k := split(items, depth)
	var l, r ref
	err := t.both(depth, k, len(items),
		func(t *task) (err error) { l, err = t.build(depth+1, items[:k]); return err },
		func(t *task) (err error) { r, err = t.build(depth+1, items[k:]); return err })
	if err != nil {
		return ref{}, err
	}
	return t.inner(l, r), nil
}

func (t *task) leaf(it *item) ref {
	h := leafHash(it.path, it.vh)
	var n node
	n.leaf = true
	n.c[0].h, n.c[1].h = it.path, it.vh
	t.out.add(newNode{h: h, n: n, pos: it.pos})
	return ref{h: h, v: t.st.version, kind: kindLeaf}
}

// inner joins two subtrees, keeping the shape canonical: nothing over nothing is
// nothing, and a lone leaf floats up to take its parent's place.
func (t *task) inner(l, r ref) ref {
	switch {
	case l.empty() && r.kind != kindInner:
		return r
	case r.empty() && l.kind != kindInner:
		return l
	}
	h := nodeHash(l.h, r.h)
	t.out.add(newNode{h: h, n: node{c: [2]ref{l, r}}})
	return ref{h: h, v: t.st.version, kind: kindInner}
}

// liveItems drops deletions (of keys that are not in the subtree anyway).
func liveItems(items []item) []item {
	n := 0
	for i := range items {
		if !items[i].del {
			n++
		}
	}
	if n == len(items) {
		return items
	}
	out := make([]item, 0, n)
	for i := range items {
		if !items[i].del {
			out = append(out, items[i])
		}
	}
	return out
}
