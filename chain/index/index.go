// Package index is a node's secondary index of committed transactions, in its
// own bbolt file (index.db in the node home): for each term (kind, value) —
// every signer and every account a transform names (account=<addr>), the
// transform type (type=<name>), the assets and crosschain transactions a
// transform names (asset=<name>, xtx=<id>) — the positions (height, index in
// the block) of the transactions under it, and for each height its block time
// and number of transactions.
//
// The index is derived data: the node writes it after a block is committed, catches
// it up from the block store on start, and `plug node reindex` rebuilds it from
// scratch. A key is
//
//	kind (1 byte) len(value) (1 byte) value height (8 bytes BE) index (4 bytes BE)
//
// with an empty value (account and xtx values stored as the bytes of their
// hex; see Prefix), so a range scan over the term's prefix returns its
// transactions in height order; a query of several terms intersects
// them by leapfrogging the cursors. See docs/storage.md.
package index

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plugchain/plug/chain/boltcheck"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
)

// Sentinel errors; callers branch on them with errors.Is.
var (
	// ErrHeight: the block is not the one after the index's height.
	ErrHeight = errors.New("index: wrong height")
	// ErrCorrupt: a record does not decode.
	ErrCorrupt = errors.New("index: corrupt")
	// ErrLocked: another process (a running node) has the file open.
	ErrLocked = boltcheck.ErrLocked
)

const formatID = "plug-index/1"

// MaxValue bounds a term's kind and value in bytes; longer ones are not indexed.
const MaxValue = 255

var (
	bucketMeta   = []byte("meta")   // format, height, low
	bucketTerms  = []byte("terms")  // kind 0 value 0 height index -> empty
	bucketBlocks = []byte("blocks") // height -> time (8 BE) | number of txs (4 BE)
	bucketTimes  = []byte("times")  // time (8 BE) | height (8 BE) -> empty

	allBuckets = [][]byte{bucketMeta, bucketTerms, bucketBlocks, bucketTimes}

	metaFormat = []byte("format")
	metaHeight = []byte("height")
	metaLow    = []byte("low")
)

type options struct {
	noSync   bool
	readOnly bool
	timeout  time.Duration
}

// Option tunes Open.
type Option func(*options)

// WithNoSync skips fsync on every write: for tests, benchmarks and a rebuild
// (which syncs once at the end).
func WithNoSync() Option { return func(o *options) { o.noSync = true } }

// WithReadOnly opens the file read-only.
func WithReadOnly() Option { return func(o *options) { o.readOnly = true } }

// WithOpenTimeout bounds how long Open waits for another process's lock.
func WithOpenTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// Index is an open index.db.
type Index struct {
	db     *bolt.DB
	path   string
	height atomic.Uint64
	low    atomic.Uint64
}

// Open creates or reopens the index at path.
func Open(path string, opts ...Option) (*Index, error) {
	o := options{timeout: 5 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	db, err := boltcheck.Open(path, &bolt.Options{Timeout: o.timeout, NoSync: o.noSync, NoGrowSync: o.noSync,
		ReadOnly: o.readOnly, FreelistType: bolt.FreelistMapType})
	if err != nil {
		var fe *boltcheck.Error
		if errors.As(err, &fe) {
			return nil, err
		}
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	x := &Index{db: db, path: path}
	open := db.Update
	if o.readOnly {
		open = db.View
	}
	err = open(func(btx *bolt.Tx) error {
		for _, name := range allBuckets {
			if o.readOnly {
				if btx.Bucket(name) == nil {
					return fmt.Errorf("%w: no bucket %q", ErrCorrupt, name)
				}
				continue
			}
			if _, err := btx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := btx.Bucket(bucketMeta)
		switch f := meta.Get(metaFormat); {
		case f == nil && btx.Writable():
			if err := meta.Put(metaFormat, []byte(formatID)); err != nil {
				return err
			}
		case string(f) != formatID:
			return fmt.Errorf("%w: format %q, want %q", ErrCorrupt, f, formatID)
		}
		if v := meta.Get(metaHeight); len(v) == 8 {
			x.height.Store(binary.BigEndian.Uint64(v))
		}
		if v := meta.Get(metaLow); len(v) == 8 {
			x.low.Store(binary.BigEndian.Uint64(v))
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	return x, nil
}

// Close releases the file.
func (x *Index) Close() error { return x.db.Close() }

// Path is the file's path.
func (x *Index) Path() string { return x.path }

// Height is the last height indexed (0: none).
func (x *Index) Height() uint64 { return x.height.Load() }

// Low is the first height still indexed (0: none); heights below it were
// pruned (see Prune) or never indexed.
func (x *Index) Low() uint64 { return x.low.Load() }

// Block is what the index keeps of one committed block: its height, its time
// (Unix milliseconds) and the terms of each of its transactions, in block order.
type Block struct {
	Height uint64
	Time   int64
	Txs    [][]transform.Term
}

// Pos is a transaction's position in the chain.
type Pos struct {
	Height uint64
	Index  uint32
}

// Less orders positions by height, then index.
func (p Pos) Less(q Pos) bool {
	return p.Height < q.Height || p.Height == q.Height && p.Index < q.Index
}

func (p Pos) next() Pos {
	if p.Index == ^uint32(0) {
		return Pos{Height: p.Height + 1}
	}
	return Pos{Height: p.Height, Index: p.Index + 1}
}

func (p Pos) bytes() []byte {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], p.Height)
	binary.BigEndian.PutUint32(b[8:], p.Index)
	return b[:]
}

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

// Indexable reports whether t can be a key's term: a kind of 1 to MaxValue
// bytes and a value of at most MaxValue bytes.
func Indexable(t transform.Term) bool {
	return t.Kind != "" && len(t.Value) <= MaxValue && len(t.Kind) <= MaxValue
}

// Kind codes: the first byte of a key. Accounts and XTx IDs given in hex are
// stored as their bytes (20 and 32), which halves their keys.
const (
	codeAccount = 1 // account, 20 bytes decoded from 40 hex digits
	codeAsset   = 2 // asset name
	codeType    = 3 // transform type
	codeXTx     = 4 // XTx ID, 32 bytes decoded from 64 hex digits
	codeOther   = 0xff
)

// Prefix is the key prefix of term t: its kind's code and the length of its
// value, then the value (account and xtx hex decoded); another kind is
// 0xff, its length and name, then the value's length and the value.
func Prefix(t transform.Term) []byte {
	v := []byte(t.Value)
	var k []byte
	switch t.Kind {
	case transform.TermAccount, transform.TermXTx:
		code, n := byte(codeAccount), 20
		if t.Kind == transform.TermXTx {
			code, n = codeXTx, 32
		}
		if b, err := hex.DecodeString(t.Value); err == nil && len(b) == n {
			k = append(k, code)
			v = b
		} else {
			k = append(k, codeOther, byte(len(t.Kind)))
			k = append(k, t.Kind...)
		}
	case transform.TermAsset:
		k = append(k, codeAsset)
	case transform.TermType:
		k = append(k, codeType)
	default:
		k = append(k, codeOther, byte(len(t.Kind)))
		k = append(k, t.Kind...)
	}
	k = append(k, byte(len(v)))
	return append(k, v...)
}

// Key is the key of term t at position p.
func Key(t transform.Term, p Pos) []byte { return append(Prefix(t), p.bytes()...) }

// keysOf returns the sorted, distinct keys of b's transactions.
func keysOf(b *Block) [][]byte {
	var keys [][]byte
	for i, terms := range b.Txs {
		p := Pos{Height: b.Height, Index: uint32(i)}
		for _, t := range terms {
			if Indexable(t) {
				keys = append(keys, Key(t, p))
			}
		}
	}
	slices.SortFunc(keys, bytes.Compare)
	return slices.CompactFunc(keys, bytes.Equal)
}

// Add indexes blocks, which must follow each other from Height()+1 (any
// height when the index is empty), in one write.
func (x *Index) Add(blocks ...*Block) error {
	if len(blocks) == 0 {
		return nil
	}
	h := x.Height()
	for _, b := range blocks {
		if h != 0 && b.Height != h+1 || b.Height == 0 {
			return fmt.Errorf("%w: index is at height %d, block is %d", ErrHeight, h, b.Height)
		}
		h = b.Height
	}
	var keys [][]byte
	for _, b := range blocks {
		keys = append(keys, keysOf(b)...)
	}
	slices.SortFunc(keys, bytes.Compare)
	err := x.db.Update(func(btx *bolt.Tx) error {
		terms := btx.Bucket(bucketTerms)
		for _, k := range keys {
			if err := terms.Put(k, nil); err != nil {
				return err
			}
		}
		bk, tk := btx.Bucket(bucketBlocks), btx.Bucket(bucketTimes)
		bk.FillPercent, tk.FillPercent = 1, 1 // appended in order
		for _, b := range blocks {
			var v [12]byte
			binary.BigEndian.PutUint64(v[:8], uint64(b.Time))
			binary.BigEndian.PutUint32(v[8:], uint32(len(b.Txs)))
			if err := bk.Put(u64(b.Height), v[:]); err != nil {
				return err
			}
			if err := tk.Put(append(u64(uint64(b.Time)), u64(b.Height)...), nil); err != nil {
				return err
			}
		}
		meta := btx.Bucket(bucketMeta)
		if x.Low() == 0 {
			if err := meta.Put(metaLow, u64(blocks[0].Height)); err != nil {
				return err
			}
		}
		return meta.Put(metaHeight, u64(h))
	})
	if err != nil {
		return fmt.Errorf("index blocks %d-%d: %w", blocks[0].Height, h, err)
	}
	if x.Low() == 0 {
		x.low.Store(blocks[0].Height)
	}
	x.height.Store(h)
	return nil
}

// Prune removes block b, which must be the lowest indexed (Low()), from the
// index: the caller passes the same terms it indexed the block with (it
// rederives them from the block store).
func (x *Index) Prune(b *Block) error {
	if b.Height != x.Low() || b.Height >= x.Height() {
		return fmt.Errorf("%w: prune block %d, index holds %d-%d (the last block is never pruned)", ErrHeight, b.Height, x.Low(), x.Height())
	}
	keys := keysOf(b)
	err := x.db.Update(func(btx *bolt.Tx) error {
		terms := btx.Bucket(bucketTerms)
		for _, k := range keys {
			if err := terms.Delete(k); err != nil {
				return err
			}
		}
		if err := btx.Bucket(bucketBlocks).Delete(u64(b.Height)); err != nil {
			return err
		}
		if err := btx.Bucket(bucketTimes).Delete(append(u64(uint64(b.Time)), u64(b.Height)...)); err != nil {
			return err
		}
		return btx.Bucket(bucketMeta).Put(metaLow, u64(b.Height+1))
	})
	if err != nil {
		return fmt.Errorf("prune index block %d: %w", b.Height, err)
	}
	x.low.Store(b.Height + 1)
	return nil
}

// Filter selects transactions: those under every one of Terms (all
// transactions when none), at heights From..To (0: unbounded) and block times
// FromTime..ToTime (Unix milliseconds; 0: unbounded), after position After
// (nil: from the start).
type Filter struct {
	Terms            []transform.Term
	From, To         uint64
	FromTime, ToTime int64
	After            *Pos
}

// BlockInfo is what the index knows of a height.
type BlockInfo struct {
	Time int64
	Txs  uint32
}

// Scan calls fn with the position of each transaction f selects, in height
// order, with its block's time, until fn returns false. It runs in one read
// transaction: fn sees a consistent index and must not write to it.
func (x *Index) Scan(f Filter, fn func(p Pos, blockTime int64) bool) error {
	for _, t := range f.Terms {
		if !Indexable(t) {
			return fmt.Errorf("term %s=%q cannot be indexed (empty kind, or over %d bytes)", t.Kind, t.Value, MaxValue)
		}
	}
	err := x.db.View(func(btx *bolt.Tx) error {
		lo, hi, ok := heightRange(btx, f)
		if !ok {
			return nil
		}
		start := Pos{Height: lo}
		if f.After != nil && !f.After.Less(start) {
			if f.After.Height >= hi && f.After.Index == ^uint32(0) {
				return nil
			}
			start = f.After.next()
		}
		blocks := btx.Bucket(bucketBlocks)
		timeOf := func(h uint64) int64 {
			v := blocks.Get(u64(h))
			if len(v) != 12 {
				return 0
			}
			return int64(binary.BigEndian.Uint64(v[:8]))
		}
		if len(f.Terms) == 0 {
			c := blocks.Cursor()
			for k, v := c.Seek(u64(start.Height)); k != nil; k, v = c.Next() {
				h := binary.BigEndian.Uint64(k)
				if h > hi {
					return nil
				}
				if len(v) != 12 {
					return fmt.Errorf("%w: block record %d", ErrCorrupt, h)
				}
				t, n := int64(binary.BigEndian.Uint64(v[:8])), binary.BigEndian.Uint32(v[8:])
				i := uint32(0)
				if h == start.Height {
					i = start.Index
				}
				for ; i < n; i++ {
					if !fn(Pos{Height: h, Index: i}, t) {
						return nil
					}
				}
			}
			return nil
		}
		terms := btx.Bucket(bucketTerms)
		curs := make([]*bolt.Cursor, len(f.Terms))
		prefixes := make([][]byte, len(f.Terms))
		for i, t := range f.Terms {
			curs[i], prefixes[i] = terms.Cursor(), Prefix(t)
		}
		// seek returns the first position >= p under term i.
		seek := func(i int, p Pos) (Pos, bool) {
			k, _ := curs[i].Seek(append(prefixes[i], p.bytes()...))
			for ; k != nil && bytes.HasPrefix(k, prefixes[i]); k, _ = curs[i].Next() {
				if len(k) == len(prefixes[i])+12 {
					s := k[len(prefixes[i]):]
					return Pos{Height: binary.BigEndian.Uint64(s[:8]), Index: binary.BigEndian.Uint32(s[8:])}, true
				}
			}
			return Pos{}, false
		}
		cand := start
		lastH, lastT := uint64(0), int64(0)
		for {
			agree := true
			for i := range curs {
				p, ok := seek(i, cand)
				if !ok || p.Height > hi {
					return nil
				}
				if cand.Less(p) {
					cand = p
					if i > 0 {
						agree = false
						break
					}
				}
			}
			if !agree {
				continue
			}
			if cand.Height != lastH {
				lastH, lastT = cand.Height, timeOf(cand.Height)
			}
			if !fn(cand, lastT) {
				return nil
			}
			cand = cand.next()
		}
	})
	if err != nil {
		return fmt.Errorf("scan index: %w", err)
	}
	return nil
}

// heightRange turns f's heights and times into the heights lo..hi to scan;
// ok is false when none can match. Block times never go back, so the
// heights of a time range are consecutive.
func heightRange(btx *bolt.Tx, f Filter) (lo, hi uint64, ok bool) {
	lo, hi = max(f.From, 1), f.To
	if hi == 0 {
		hi = ^uint64(0)
	}
	times := btx.Bucket(bucketTimes).Cursor()
	if f.FromTime != 0 {
		k, _ := times.Seek(append(u64(uint64(f.FromTime)), u64(0)...))
		if k == nil {
			return 0, 0, false
		}
		lo = max(lo, binary.BigEndian.Uint64(k[8:]))
	}
	if f.ToTime != 0 {
		k, _ := times.Seek(u64(uint64(f.ToTime) + 1))
		if k == nil {
			k, _ = times.Last()
		} else {
			k, _ = times.Prev()
		}
		if k == nil || int64(binary.BigEndian.Uint64(k[:8])) > f.ToTime {
			return 0, 0, false
		}
		hi = min(hi, binary.BigEndian.Uint64(k[8:]))
	}
	return lo, hi, lo <= hi
}

// Info returns what the index holds of height h (false when it is not indexed).
func (x *Index) Info(h uint64) (BlockInfo, bool, error) {
	var out BlockInfo
	var found bool
	err := x.db.View(func(btx *bolt.Tx) error {
		v := btx.Bucket(bucketBlocks).Get(u64(h))
		if v == nil {
			return nil
		}
		if len(v) != 12 {
			return fmt.Errorf("%w: block record %d", ErrCorrupt, h)
		}
		out, found = BlockInfo{Time: int64(binary.BigEndian.Uint64(v[:8])), Txs: binary.BigEndian.Uint32(v[8:])}, true
		return nil
	})
	return out, found, err
}

// Dump calls fn with every key of the terms bucket in order, and then every
// block record as "height -> value": for comparing two indexes.
func (x *Index) Dump(fn func(k, v []byte)) error {
	return x.db.View(func(btx *bolt.Tx) error {
		for _, name := range [][]byte{bucketTerms, bucketBlocks, bucketTimes} {
			c := btx.Bucket(name).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				fn(append(append([]byte{}, name...), k...), v)
			}
		}
		return nil
	})
}

// Sync flushes the file to disk (for an index opened WithNoSync).
func (x *Index) Sync() error { return x.db.Sync() }

// Size is the file's size in bytes as bbolt sees it.
func (x *Index) Size() (int64, error) {
	var n int64
	err := x.db.View(func(btx *bolt.Tx) error { n = btx.Size(); return nil })
	return n, err
}

// TermsOf returns the terms a committed transaction is indexed under: its
// type, its signers and whatever its transform names (transform.Indexed),
// decoded with reg. A payload that does not decode (a rejected transaction)
// is indexed by type and signers only.
func TermsOf(reg *transform.Registry, ctx *transform.Context, t *tx.Tx) []transform.Term {
	out := []transform.Term{{Kind: transform.TermType, Value: t.Body.Type}}
	signers := make([]transform.Term, 0, len(t.Body.Signers))
	for _, s := range t.Body.Signers {
		a := s.Key.Address()
		signers = append(signers, transform.AccountTerm(a))
	}
	out = append(out, signers...)
	if reg == nil {
		return out
	}
	tr, err := reg.Decode(t.Body.Type, t.Body.Payload)
	if err != nil {
		return out
	}
	if ix, ok := tr.(transform.Indexed); ok {
		out = append(out, ix.IndexTerms(ctx)...)
	}
	return out
}
