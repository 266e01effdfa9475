// Package state is the persistent, versioned, authenticated key/value store of one
// chain: every committed version has a root in chain/proof's sparse Merkle tree, readable
// and provable for as long as the file lives.
//
// Layout and proof format are specified in docs/state-tree.md. In short, a bbolt
// file holds four buckets: "nodes" (version|hash -> node record, written once and
// never changed), "roots" (version -> root reference), "latest" (key -> value, the
// flat view that makes Get O(1) and Iterate sorted) and "meta".
//
// Concurrency: every method of Store may be called from any goroutine. Get, GetAt,
// Prove, RootAt, Iterate and Stage run concurrently with each other and with
// Commit; Commits are serialized. A Batch is immutable once staged.
package state

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plugchain/plug/chain/boltcheck"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/proof"
)

// Sentinel errors; callers branch on them with errors.Is.
var (
	// ErrStaleBatch: the batch was staged on a version that is no longer the latest
	// (another batch was committed first), or it was already committed.
	ErrStaleBatch = errors.New("state: stale batch")
	// ErrUnknownVersion: the version asked for was never committed.
	ErrUnknownVersion = errors.New("state: unknown version")
	// ErrValueTooLarge: a value exceeds the store's limit (see WithMaxValueSize).
	ErrValueTooLarge = errors.New("state: value too large")
	// ErrKeyTooLarge: a key exceeds the store's limit (see WithMaxKeySize).
	ErrKeyTooLarge = errors.New("state: key too large")
	// ErrEmptyKey: the empty string is not a valid key (bbolt cannot store it).
	ErrEmptyKey = errors.New("state: empty key")
	// ErrUnknownKey: IterateAt met a leaf whose key the store cannot name (it was
	// deleted before the store recorded deletions).
	ErrUnknownKey = errors.New("state: key of a leaf unknown")
	// ErrCorrupt: a node, root or record is missing or does not decode; the file is
	// damaged or was written by something else.
	ErrCorrupt = errors.New("state: corrupt store")
	// ErrLocked: another process (a running node) has the file open; Open
	// waited WithOpenTimeout for it.
	ErrLocked = boltcheck.ErrLocked
)

// Defaults of the options.
const (
	DefaultMaxValueSize = 1 << 20   // 1 MiB
	DefaultMaxKeySize   = 1 << 10   // 1 KiB
	DefaultNodeCache    = 4_000_000 // nodes (~150 bytes each when full)
)

const formatID = "plug-state/1"

var (
	bucketMeta   = []byte("meta")
	bucketRoots  = []byte("roots")
	bucketNodes  = []byte("nodes")
	bucketLatest = []byte("latest")
	// bucketGone records every key ever deleted (key -> the version that deleted
	// it last): with "latest" it names every key any version may hold, which the
	// tree's leaves (paths, not keys) cannot. IterateAt reads it.
	bucketGone = []byte("gone")

	metaFormat  = []byte("format")
	metaVersion = []byte("version")
)

type options struct {
	nodeCache    int
	noSync       bool
	readOnly     bool
	maxValueSize int
	maxKeySize   int
	mmapSize     int
	timeout      time.Duration
}

// Option tunes Open.
type Option func(*options)

// WithNodeCache bounds the in-memory node cache to about n decoded nodes (0 turns it
// off). The cache is what keeps a block's updates from reading bbolt for every node
// on its paths.
func WithNodeCache(n int) Option { return func(o *options) { o.nodeCache = n } }

// WithNoSync skips fsync on commit. It trades crash safety for speed: for tests,
// benchmarks and bulk imports that are redone on failure, never for a node.
func WithNoSync() Option { return func(o *options) { o.noSync = true } }

// WithMaxValueSize changes the largest value Stage accepts.
func WithMaxValueSize(n int) Option { return func(o *options) { o.maxValueSize = n } }

// WithMaxKeySize changes the longest key Stage accepts (at most 32 KiB, bbolt's limit).
func WithMaxKeySize(n int) Option { return func(o *options) { o.maxKeySize = n } }

// WithOpenTimeout bounds how long Open waits for another process's lock on the file.
func WithOpenTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithReadOnly opens the file read-only, under a shared lock, and writes
// nothing to it (`plug node check`). Commit fails.
func WithReadOnly() Option { return func(o *options) { o.readOnly = true } }

// Store is one chain's state. See the package comment for what is safe concurrently.
type Store struct {
	db    *bolt.DB
	path  string
	opts  options
	cache *nodeCache

	commitMu sync.Mutex // serializes Commit

	mu      sync.RWMutex // guards version and root
	version uint64
	root    ref
}

// Open creates or reopens the state file at path.
func Open(path string, opts ...Option) (*Store, error) {
	o := options{
		nodeCache:    DefaultNodeCache,
		maxValueSize: DefaultMaxValueSize,
		maxKeySize:   DefaultMaxKeySize,
		mmapSize:     1 << 30,
		timeout:      5 * time.Second,
	}
	for _, f := range opts {
		f(&o)
	}
	if o.maxKeySize > bolt.MaxKeySize {
		o.maxKeySize = bolt.MaxKeySize
	}
	bo := &bolt.Options{
		Timeout:         o.timeout,
		NoSync:          o.noSync,
		NoGrowSync:      o.noSync,
		ReadOnly:        o.readOnly,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: o.mmapSize,
	}
	if o.readOnly {
		bo.InitialMmapSize = 0
	}
	// boltcheck.Open refuses a file whose meta pages are bad or that is shorter
	// than they say (bbolt would die of SIGBUS on it) and walks a small file.
	db, err := boltcheck.Open(path, bo)
	if err != nil {
		var fe *boltcheck.Error
		if errors.As(err, &fe) {
			return nil, err
		}
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	s := &Store{db: db, path: path, opts: o, cache: newNodeCache(o.nodeCache)}
	open := db.Update
	if o.readOnly {
		open = db.View
	}
	err = boltcheck.Guard(path, func() error { return open(s.openMeta) })
	if err != nil {
		db.Close()
		if err := boltcheck.Wrap(path, ErrCorrupt, err); errors.Is(err, boltcheck.ErrCorrupt) {
			return nil, err
		}
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	return s, nil
}

// openMeta creates the buckets of a new file, checks the format mark and loads
// the latest version and root.
func (s *Store) openMeta(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketMeta, bucketRoots, bucketNodes, bucketLatest, bucketGone} {
		if !tx.Writable() {
			// A store from before the gone bucket lacks it; IterateAt says so.
			if tx.Bucket(name) == nil && !bytes.Equal(name, bucketGone) {
				return fmt.Errorf("%w: no bucket %q", ErrCorrupt, name)
			}
			continue
		}
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	switch f := meta.Get(metaFormat); {
	case f == nil:
		if meta.Get(metaVersion) != nil {
			return fmt.Errorf("%w: versioned store without a format mark", ErrCorrupt)
		}
		if !tx.Writable() {
			return fmt.Errorf("%w: no format mark (never opened for writing)", ErrCorrupt)
		}
		return meta.Put(metaFormat, []byte(formatID))
	case string(f) != formatID:
		return fmt.Errorf("%w: format %q, want %q", ErrCorrupt, f, formatID)
	}
	if v := meta.Get(metaVersion); v != nil {
		if len(v) != versionBytes {
			return fmt.Errorf("%w: bad version record", ErrCorrupt)
		}
		var err error
		s.version = binary.BigEndian.Uint64(v)
		s.root, err = readRoot(tx, s.version)
		return err
	}
	return nil
}

// Close releases the file. A staged but uncommitted Batch is simply lost.
func (s *Store) Close() error { return s.db.Close() }

// Version is the last committed version; 0 means nothing was ever committed.
func (s *Store) Version() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.version
}

// Root is the state root at Version() (the zero hash for an empty tree).
func (s *Store) Root() hash.Hash {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.root.h
}

func (s *Store) head() (uint64, ref) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.version, s.root
}

// RootAt is the root committed as version (version 0 is the empty tree).
func (s *Store) RootAt(version uint64) (hash.Hash, error) {
	var r ref
	err := s.view(version, func(tx *bolt.Tx) error {
		var err error
		r, err = readRoot(tx, version)
		return err
	})
	return r.h, err
}

// view runs fn in a read transaction after checking that version was committed.
func (s *Store) view(version uint64, fn func(tx *bolt.Tx) error) error {
	if cur := s.Version(); version > cur {
		return fmt.Errorf("%w: %d (latest is %d)", ErrUnknownVersion, version, cur)
	}
	return s.guard(fn)
}

// guard runs fn in a read transaction under boltcheck.Guard: a damaged page is
// reported as an error naming the file, never a crash. An ErrCorrupt of fn comes
// back as a *boltcheck.Error (which still matches ErrCorrupt).
func (s *Store) guard(fn func(tx *bolt.Tx) error) error {
	return boltcheck.Wrap(s.path, ErrCorrupt, boltcheck.Guard(s.path, func() error { return s.db.View(fn) }))
}

func readRoot(tx *bolt.Tx, version uint64) (ref, error) {
	if version == 0 {
		return ref{}, nil
	}
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], version)
	rec := tx.Bucket(bucketRoots).Get(k[:])
	if rec == nil {
		return ref{}, fmt.Errorf("%w: no root for version %d", ErrCorrupt, version)
	}
	if len(rec) != rootRecLen {
		return ref{}, fmt.Errorf("%w: root record of version %d is %d bytes", ErrCorrupt, version, len(rec))
	}
	r, err := getRef(rec)
	if err != nil {
		return ref{}, fmt.Errorf("root of version %d: %w", version, err)
	}
	return r, nil
}

// Get returns the latest committed value of key from the flat bucket, without
// touching the tree.
func (s *Store) Get(key string) ([]byte, bool, error) {
	if key == "" {
		return nil, false, nil
	}
	var val []byte
	var found bool
	err := s.guard(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketLatest).Get([]byte(key))
		if v != nil {
			found = true
			val = bytes.Clone(v)
		}
		return nil
	})
	return val, found, err
}

// GetMany reads the latest committed values of keys in one read transaction, in
// key order for locality; the executor prefetches a block's declared keys with it.
// values[i] is nil and found[i] false for a missing key.
func (s *Store) GetMany(keys []string) (values [][]byte, found []bool, err error) {
	values, found = make([][]byte, len(keys)), make([]bool, len(keys))
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(keys[a], keys[b]) })
	err = s.guard(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLatest)
		for _, i := range order {
			if keys[i] == "" {
				continue
			}
			if v := b.Get([]byte(keys[i])); v != nil {
				values[i], found[i] = bytes.Clone(v), true
			}
		}
		return nil
	})
	return values, found, err
}

// GetAt returns key's value as of version, walking that version's tree.
func (s *Store) GetAt(version uint64, key string) ([]byte, bool, error) {
	v, found, _, err := s.lookup(version, key, false)
	return v, found, err
}

// Prove returns key's value at version with a proof against RootAt(version): a
// membership proof when found, a non-membership proof otherwise.
func (s *Store) Prove(version uint64, key string) ([]byte, bool, *proof.StateProof, error) {
	return s.lookup(version, key, true)
}

func (s *Store) lookup(version uint64, key string, prove bool) (value []byte, found bool, p *proof.StateProof, err error) {
	err = s.view(version, func(tx *bolt.Tx) error {
		r, err := readRoot(tx, version)
		if err != nil {
			return err
		}
		rd := &nodeReader{b: tx.Bucket(bucketNodes), cache: s.cache}
		value, found, p, err = rd.lookup(r, key, prove)
		return err
	})
	if err != nil {
		return nil, false, nil, fmt.Errorf("state at version %d, key %q: %w", version, key, err)
	}
	return value, found, p, nil
}

// lookup walks the tree under r to key.
func (rd *nodeReader) lookup(r ref, key string, prove bool) (value []byte, found bool, p *proof.StateProof, err error) {
	path := proof.KeyPath(key)
	var sibs []hash.Hash
	if prove {
		sibs = make([]hash.Hash, 0, 32)
	}
	for depth := 0; ; depth++ {
		switch r.kind {
		case kindEmpty:
			if prove {
				p = proof.NewStateProof(sibs, nil)
			}
			return nil, false, p, nil
		case kindLeaf:
			n, err := rd.load(r, depth)
			if err != nil {
				return nil, false, nil, err
			}
			if n.c[0].h != path {
				if prove {
					p = proof.NewStateProof(sibs, &proof.StateLeaf{Path: n.c[0].h, ValueHash: n.c[1].h})
				}
				return nil, false, p, nil
			}
			value, err = rd.value(r, n.c[1].h, depth)
			if err != nil {
				return nil, false, nil, err
			}
			if prove {
				p = proof.NewStateProof(sibs, nil)
			}
			return value, true, p, nil
		default:
			if depth >= proof.MaxDepth {
				return nil, false, nil, fmt.Errorf("%w: tree deeper than %d", ErrCorrupt, proof.MaxDepth)
			}
			n, err := rd.load(r, depth)
			if err != nil {
				return nil, false, nil, err
			}
			bit := path.Bit(depth)
			if prove {
				sibs = append(sibs, n.c[1-bit].h)
			}
			r = n.c[bit]
		}
	}
}

// nodeReader loads nodes through the cache from one read transaction. Its mutex
// lets the parallel workers of a Stage share the transaction (bbolt objects are not
// safe for concurrent use).
type nodeReader struct {
	mu    sync.Mutex
	b     *bolt.Bucket
	cache *nodeCache
}

func (rd *nodeReader) load(r ref, depth int) (node, error) {
	if n, ok := rd.cache.get(r.h); ok {
		return n, nil
	}
	var k [nodeKeyLen]byte
	nodeKey(k[:0], r.v, r.h)
	rd.mu.Lock()
	rec := rd.b.Get(k[:])
	rd.mu.Unlock()
	if rec == nil {
		return node{}, fmt.Errorf("read node %s at depth %d: %w: missing", r.h.Short(), depth, ErrCorrupt)
	}
	n, err := decodeNode(rec, r.h)
	if err == nil && n.leaf != (r.kind == kindLeaf) {
		err = fmt.Errorf("%w: node kind differs from its reference", ErrCorrupt)
	}
	if err != nil {
		return node{}, fmt.Errorf("read node %s at depth %d: %w", r.h.Short(), depth, err)
	}
	rd.cache.put(r.h, n)
	return n, nil
}

// value reads the value bytes stored in a leaf's record and checks them against the
// leaf's value hash.
func (rd *nodeReader) value(r ref, vh hash.Hash, depth int) ([]byte, error) {
	var k [nodeKeyLen]byte
	nodeKey(k[:0], r.v, r.h)
	rd.mu.Lock()
	rec := rd.b.Get(k[:])
	rd.mu.Unlock()
	if len(rec) < leafHeadLen {
		return nil, fmt.Errorf("read leaf %s at depth %d: %w: missing", r.h.Short(), depth, ErrCorrupt)
	}
	v := rec[leafHeadLen:]
	if proof.ValueHash(v) != vh {
		return nil, fmt.Errorf("read leaf %s at depth %d: %w: value does not match its hash", r.h.Short(), depth, ErrCorrupt)
	}
	return bytes.Clone(v), nil
}

// Commit writes b as version b.Version() in one bbolt transaction: either all of it
// is durable (unless WithNoSync) or none of it is. It fails with ErrStaleBatch if
// another batch was committed since b was staged.
func (s *Store) Commit(b *Batch) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if b == nil || b.s != s || b.committed || b.base != s.Version() {
		return ErrStaleBatch
	}

	// Write nodes in key order (bbolt is fastest on appends): sort small
	// (hash prefix, index) pairs, not the nodes.
	order := make([]sortKey, 0, b.nodes.n)
	recBytes := 0
	for i, c := range b.nodes.chunks {
		for j := range c {
			nn := &c[j]
			order = append(order, sortKey{pre: binary.BigEndian.Uint64(nn.h[:8]), i: int32(i), j: int32(j)})
			if nn.n.leaf {
				recBytes += leafHeadLen + len(b.items[nn.pos].value)
			} else {
				recBytes += innerRecLen
			}
		}
	}
	slices.SortFunc(order, func(x, y sortKey) int {
		if x.pre != y.pre {
			return cmp.Compare(x.pre, y.pre)
		}
		return bytes.Compare(b.nodes.at(x).h[:], b.nodes.at(y).h[:])
	})
	// Encode into two arenas; bbolt keeps references to the slices until the
	// transaction ends, so nothing may be reused.
	keys := make([]byte, 0, b.nodes.n*nodeKeyLen)
	recs := make([]byte, recBytes)

	latest := make([]int32, len(b.items))
	for i := range latest {
		latest[i] = int32(i)
	}
	slices.SortFunc(latest, func(x, y int32) int { return strings.Compare(b.items[x].key, b.items[y].key) })

	var verKey [8]byte
	binary.BigEndian.PutUint64(verKey[:], b.version)
	var rootRec [rootRecLen]byte
	putRef(rootRec[:], b.root)

	err := s.db.Update(func(tx *bolt.Tx) error {
		nodes := tx.Bucket(bucketNodes)
		nodes.FillPercent = 1 // keys only ever grow: pack pages full
		off := 0
		for _, o := range order {
			nn := b.nodes.at(o)
			keys = nodeKey(keys, b.version, nn.h)
			k := keys[len(keys)-nodeKeyLen:]
			var rec []byte
			if nn.n.leaf {
				value := b.items[nn.pos].value
				rec = recs[off : off+leafHeadLen+len(value)]
				encodeLeaf(rec, nn.n.c[0].h, nn.n.c[1].h, value)
			} else {
				rec = recs[off : off+innerRecLen]
				encodeInner(rec, &nn.n)
			}
			off += len(rec)
			if err := nodes.Put(k, rec); err != nil {
				return fmt.Errorf("write node %s: %w", nn.h.Short(), err)
			}
		}
		lb, gone := tx.Bucket(bucketLatest), tx.Bucket(bucketGone)
		for _, i := range latest {
			it := &b.items[i]
			var err error
			if it.del {
				if err = lb.Delete([]byte(it.key)); err == nil {
					err = gone.Put([]byte(it.key), verKey[:])
				}
			} else {
				err = lb.Put([]byte(it.key), it.value)
			}
			if err != nil {
				return fmt.Errorf("write latest %q: %w", it.key, err)
			}
		}
		roots := tx.Bucket(bucketRoots)
		roots.FillPercent = 1
		if err := roots.Put(verKey[:], rootRec[:]); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(metaVersion, verKey[:])
	})
	if err != nil {
		return fmt.Errorf("commit state version %d: %w", b.version, err)
	}
	s.mu.Lock()
	s.version, s.root = b.version, b.root
	s.mu.Unlock()
	b.committed = true
	for _, c := range b.nodes.chunks {
		for j := range c {
			s.cache.put(c[j].h, c[j].n)
		}
	}
	b.nodes, b.items, b.arena = nodeBuf{}, nil, nil
	return nil
}
