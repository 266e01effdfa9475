// Package store is a node's block store: committed blocks, their headers,
// certificates and receipts, a transaction index, the genesis document and the
// consensus write-ahead state, in one bbolt file (chain.db) separate from the state
// file. Every write is one bbolt transaction, fsync'd before it returns (unless
// WithNoSync). See docs/storage.md for the layout and the crash-recovery rule.
//
// Every method may be called from any goroutine; reads run concurrently with
// writes, writes are serialized.
package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/boltcheck"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/tx"
)

// Sentinel errors; callers branch on them with errors.Is.
var (
	// ErrNotFound: no such height, transaction or record.
	ErrNotFound = errors.New("store: not found")
	// ErrHeight: the block is not the one after the store's height.
	ErrHeight = errors.New("store: wrong height")
	// ErrMismatch: the block, its certificate, its receipts, its parent or the
	// saved genesis do not agree.
	ErrMismatch = errors.New("store: mismatch")
	// ErrCorrupt: a record is missing or does not decode; the file is damaged or
	// was written by something else.
	ErrCorrupt = errors.New("store: corrupt")
	// ErrLocked: another process (a running node) has the file open; Open
	// waited WithOpenTimeout for it.
	ErrLocked = boltcheck.ErrLocked
)

const formatID = "plug-chain/1"

var (
	bucketMeta     = []byte("meta")     // format, height, genesis
	bucketBlocks   = []byte("blocks")   // height -> block
	bucketHeaders  = []byte("headers")  // height -> header
	bucketCerts    = []byte("certs")    // height -> certificate
	bucketReceipts = []byte("receipts") // height -> receipts
	bucketTxs      = []byte("txs")      // tx ID -> height | index
	bucketIDs      = []byte("ids")      // height -> header hash
	bucketHeights  = []byte("heights")  // header hash -> height
	bucketWAL      = []byte("wal")      // consensus state record
	bucketBlobs    = []byte("blobs")    // sha256(bytes) -> block bytes the WAL refers to

	allBuckets = [][]byte{bucketMeta, bucketBlocks, bucketHeaders, bucketCerts, bucketReceipts,
		bucketTxs, bucketIDs, bucketHeights, bucketWAL, bucketBlobs}

	metaFormat      = []byte("format")
	metaHeight      = []byte("height")
	metaGenesis     = []byte("genesis")
	metaGenesisHash = []byte("genesis-hash")
	walState        = []byte("state")
)

type options struct {
	noSync   bool
	readOnly bool
	timeout  time.Duration
}

// Option tunes Open.
type Option func(*options)

// WithNoSync skips fsync on every write: for tests and benchmarks, never a node.
func WithNoSync() Option { return func(o *options) { o.noSync = true } }

// WithOpenTimeout bounds how long Open waits for another process's lock on the file.
func WithOpenTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithReadOnly opens the file read-only, under a shared lock, and writes
// nothing to it (`plug node check`). The writing methods fail.
func WithReadOnly() Option { return func(o *options) { o.readOnly = true } }

// Store is a node's block store.
type Store struct {
	db     *bolt.DB
	path   string
	height atomic.Uint64
	walMu  sync.Mutex // serializes SaveConsensus
}

// Open creates or reopens the block store at path.
func Open(path string, opts ...Option) (*Store, error) {
	o := options{timeout: 5 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	bo := &bolt.Options{
		Timeout:      o.timeout,
		NoSync:       o.noSync,
		NoGrowSync:   o.noSync,
		ReadOnly:     o.readOnly,
		FreelistType: bolt.FreelistMapType,
		// Address space only: it spares the remaps (each of which waits for every
		// reader) that a growing file would otherwise cost.
		InitialMmapSize: 1 << 30,
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
		return nil, fmt.Errorf("open block store %s: %w", path, err)
	}
	s := &Store{db: db, path: path}
	open := db.Update
	if o.readOnly {
		open = db.View
	}
	err = boltcheck.Guard(path, func() error {
		return open(func(tx *bolt.Tx) error {
			for _, name := range allBuckets {
				if o.readOnly {
					if tx.Bucket(name) == nil {
						return fmt.Errorf("%w: no bucket %q", ErrCorrupt, name)
					}
					continue
				}
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			return s.openMeta(tx)
		})
	})
	if err != nil {
		db.Close()
		if err := boltcheck.Wrap(path, ErrCorrupt, err); err != nil && errors.Is(err, boltcheck.ErrCorrupt) {
			return nil, err
		}
		return nil, fmt.Errorf("open block store %s: %w", path, err)
	}
	return s, nil
}

// openMeta checks the format mark and loads the height.
func (s *Store) openMeta(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	switch f := meta.Get(metaFormat); {
	case f == nil:
		if meta.Get(metaHeight) != nil {
			return fmt.Errorf("%w: store with blocks but no format mark", ErrCorrupt)
		}
		if !tx.Writable() {
			return fmt.Errorf("%w: no format mark (never opened for writing)", ErrCorrupt)
		}
		if err := meta.Put(metaFormat, []byte(formatID)); err != nil {
			return err
		}
	case string(f) != formatID:
		return fmt.Errorf("%w: format %q, want %q", ErrCorrupt, f, formatID)
	}
	if v := meta.Get(metaHeight); v != nil {
		if len(v) != 8 {
			return fmt.Errorf("%w: bad height record", ErrCorrupt)
		}
		h := binary.BigEndian.Uint64(v)
		if tx.Bucket(bucketBlocks).Get(u64(h)) == nil {
			return fmt.Errorf("%w: height %d recorded but its block is missing", ErrCorrupt, h)
		}
		s.height.Store(h)
	}
	return nil
}

// Close releases the file.
func (s *Store) Close() error { return s.db.Close() }

// Height returns the height of the last saved block (0 when none).
func (s *Store) Height() uint64 { return s.height.Load() }

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

// SaveBlock saves a final block with its certificate and receipts (one per
// transaction, in block order) and advances Height, all in one fsync'd write. The
// block must be at Height()+1, follow the saved header at Height(), and be the
// block cert certifies.
func (s *Store) SaveBlock(b *block.Block, cert *consensus.Certificate, receipts []exec.Receipt) error {
	if b == nil || cert == nil {
		return fmt.Errorf("save block: %w: nil block or certificate", ErrMismatch)
	}
	h := b.Header.Height
	id := b.Header.Hash()
	if cert.BlockID != id || cert.Height != h {
		return fmt.Errorf("save block %d: %w: certificate is for block %s at height %d, block is %s",
			h, ErrMismatch, cert.BlockID.Short(), cert.Height, id.Short())
	}
	if len(receipts) != len(b.Txs) {
		return fmt.Errorf("save block %d: %w: %d receipts for %d transactions", h, ErrMismatch, len(receipts), len(b.Txs))
	}
	blockBytes, err := b.Encode()
	if err != nil {
		return fmt.Errorf("save block %d: %w", h, err)
	}
	headerBytes, err := encoding.Marshal(&b.Header)
	if err != nil {
		return fmt.Errorf("save block %d: %w", h, err)
	}
	certBytes, err := encoding.Marshal(cert)
	if err != nil {
		return fmt.Errorf("save block %d: %w", h, err)
	}
	rcBytes, err := encoding.Marshal(receipts)
	if err != nil {
		return fmt.Errorf("save block %d: %w", h, err)
	}
	txIDs, err := ids(b.Txs)
	if err != nil {
		return fmt.Errorf("save block %d: %w", h, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		var cur uint64
		if v := meta.Get(metaHeight); v != nil {
			cur = binary.BigEndian.Uint64(v)
		}
		if h != cur+1 {
			return fmt.Errorf("%w: store is at height %d, block is %d", ErrHeight, cur, h)
		}
		if cur > 0 {
			prev := tx.Bucket(bucketIDs).Get(u64(cur))
			if prev == nil {
				return fmt.Errorf("%w: no header hash at height %d", ErrCorrupt, cur)
			}
			if !bytes.Equal(prev, b.Header.PrevHash[:]) {
				return fmt.Errorf("%w: block's prev_hash %s is not the saved header %x at height %d",
					ErrMismatch, b.Header.PrevHash.Short(), prev[:4], cur)
			}
		}
		hk := u64(h)
		puts := []struct {
			bucket, key, value []byte
		}{
			{bucketBlocks, hk, blockBytes},
			{bucketHeaders, hk, headerBytes},
			{bucketCerts, hk, certBytes},
			{bucketReceipts, hk, rcBytes},
			{bucketIDs, hk, id[:]},
			{bucketHeights, id[:], hk},
			{bucketMeta, metaHeight, hk},
		}
		for _, p := range puts {
			bk := tx.Bucket(p.bucket)
			if !bytes.Equal(p.bucket, bucketHeights) {
				// Keyed by height, appended in order: pack pages full instead
				// of leaving every split page half empty.
				bk.FillPercent = 1
			}
			if err := bk.Put(p.key, p.value); err != nil {
				return err
			}
		}
		// Inserting in key order keeps bbolt on neighbouring pages.
		order := make([]int, len(txIDs))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return bytes.Compare(txIDs[a][:], txIDs[b][:]) })
		txs := tx.Bucket(bucketTxs)
		for _, i := range order {
			var loc [12]byte
			binary.BigEndian.PutUint64(loc[:8], h)
			binary.BigEndian.PutUint32(loc[8:], uint32(i))
			if err := txs.Put(txIDs[i][:], loc[:]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save block %d: %w", h, err)
	}
	s.height.Store(h)
	return nil
}

// ids returns the IDs of txs, computed on all cores for big blocks.
func ids(txs []*tx.Tx) ([]hash.Hash, error) {
	out := make([]hash.Hash, len(txs))
	errs := make([]error, len(txs))
	workers := runtime.GOMAXPROCS(0)
	if len(txs) < 256 {
		workers = 1
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(txs); i += workers {
				out[i], errs[i] = txs[i].ID()
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("transaction %d: %w", i, err)
		}
	}
	return out, nil
}

// view runs fn in a read transaction under boltcheck.Guard: a damaged page is
// reported as an error naming the file, never a crash. An ErrCorrupt of fn comes
// back as a *boltcheck.Error (which still matches ErrCorrupt).
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	return boltcheck.Wrap(s.path, ErrCorrupt, boltcheck.Guard(s.path, func() error { return s.db.View(fn) }))
}

// get returns a copy of the value at key in bucket, or ErrNotFound.
func (s *Store) get(bucket, key []byte, what string) ([]byte, error) {
	var out []byte
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get(key)
		if v == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, what)
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

// decode reads a record this store wrote.
func (s *Store) decode(bucket, key []byte, what string, dst any) error {
	var err error
	verr := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get(key)
		if v == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, what)
		}
		// UnmarshalLax copies what it keeps, so v need not outlive the transaction.
		if err = encoding.UnmarshalLax(v, dst); err != nil {
			err = fmt.Errorf("%w: %s: %v", ErrCorrupt, what, err)
		}
		return nil
	})
	if verr != nil {
		return verr
	}
	return boltcheck.Wrap(s.path, ErrCorrupt, err)
}

// BlockBytes returns the encoded block at height h, as peers are sent it.
func (s *Store) BlockBytes(h uint64) ([]byte, error) {
	return s.get(bucketBlocks, u64(h), fmt.Sprintf("block %d", h))
}

// Block returns the block at height h.
func (s *Store) Block(h uint64) (*block.Block, error) {
	var b block.Block
	if err := s.decode(bucketBlocks, u64(h), fmt.Sprintf("block %d", h), &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// Header returns the header at height h.
func (s *Store) Header(h uint64) (*block.Header, error) {
	var hd block.Header
	if err := s.decode(bucketHeaders, u64(h), fmt.Sprintf("header %d", h), &hd); err != nil {
		return nil, err
	}
	return &hd, nil
}

// Certificate returns the commit certificate of the block at height h.
func (s *Store) Certificate(h uint64) (*consensus.Certificate, error) {
	var c consensus.Certificate
	if err := s.decode(bucketCerts, u64(h), fmt.Sprintf("certificate %d", h), &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Receipts returns the receipts of the block at height h, in block order. Their Err
// fields are nil (only Error is stored).
func (s *Store) Receipts(h uint64) ([]exec.Receipt, error) {
	var rs []exec.Receipt
	if err := s.decode(bucketReceipts, u64(h), fmt.Sprintf("receipts %d", h), &rs); err != nil {
		return nil, err
	}
	return rs, nil
}

// TxLocation returns the height of the block holding the transaction with ID id
// and its index in that block.
func (s *Store) TxLocation(id hash.Hash) (height uint64, index int, err error) {
	v, err := s.get(bucketTxs, id[:], "transaction "+id.String())
	if err != nil {
		return 0, 0, err
	}
	if len(v) != 12 {
		return 0, 0, fmt.Errorf("%w: transaction index record of %d bytes", ErrCorrupt, len(v))
	}
	return binary.BigEndian.Uint64(v[:8]), int(binary.BigEndian.Uint32(v[8:])), nil
}

// HeightOf returns the height of the saved block whose header hash is id.
func (s *Store) HeightOf(id hash.Hash) (uint64, error) {
	v, err := s.get(bucketHeights, id[:], "block "+id.String())
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: height record of %d bytes", ErrCorrupt, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// HashAt returns the header hash of the block at height h.
func (s *Store) HashAt(h uint64) (hash.Hash, error) {
	var id hash.Hash
	v, err := s.get(bucketIDs, u64(h), fmt.Sprintf("block %d", h))
	if err != nil {
		return id, err
	}
	if len(v) != hash.Size {
		return id, fmt.Errorf("%w: header hash record of %d bytes", ErrCorrupt, len(v))
	}
	copy(id[:], v)
	return id, nil
}

// SaveGenesis records the chain's genesis document and its hash. Saving the same
// hash again does nothing; a different one is ErrMismatch.
func (s *Store) SaveGenesis(doc []byte, h hash.Hash) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if old := meta.Get(metaGenesisHash); old != nil {
			if !bytes.Equal(old, h[:]) {
				return fmt.Errorf("%w: store holds genesis %x, not %s", ErrMismatch, old[:4], h.Short())
			}
			return nil
		}
		if err := meta.Put(metaGenesis, doc); err != nil {
			return err
		}
		return meta.Put(metaGenesisHash, h[:])
	})
	if err != nil {
		return fmt.Errorf("save genesis: %w", err)
	}
	return nil
}

// Genesis returns the saved genesis document and its hash, or ErrNotFound.
func (s *Store) Genesis() ([]byte, hash.Hash, error) {
	var doc []byte
	var h hash.Hash
	err := s.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		hv := meta.Get(metaGenesisHash)
		if hv == nil {
			return fmt.Errorf("%w: genesis", ErrNotFound)
		}
		if len(hv) != hash.Size {
			return fmt.Errorf("%w: genesis hash record of %d bytes", ErrCorrupt, len(hv))
		}
		copy(h[:], hv)
		doc = bytes.Clone(meta.Get(metaGenesis))
		return nil
	})
	return doc, h, err
}

// walRecord is the consensus state as stored: the block bytes it carries (lock,
// valid block, own proposals) are replaced by references into the blobs bucket, so
// that the frequent saves within a height rewrite a few hundred bytes, not blocks.
type walRecord struct {
	State     consensus.State `cbor:"1,keyasint"`
	Locked    []byte          `cbor:"2,keyasint,omitempty"`
	Valid     []byte          `cbor:"3,keyasint,omitempty"`
	Proposals [][]byte        `cbor:"4,keyasint,omitempty"`
}

func blobKey(b []byte) []byte {
	k := sha256.Sum256(b)
	return k[:]
}

// SaveConsensus durably records the consensus machine's state (Ready.Persist). It
// is one small fsync'd bbolt transaction; block bytes already recorded by an
// earlier save are not written again.
func (s *Store) SaveConsensus(st *consensus.State) error {
	if st == nil {
		return fmt.Errorf("save consensus state: nil state")
	}
	rec := walRecord{State: *st}
	blobs := map[string][]byte{}
	ref := func(b []byte) []byte {
		if len(b) == 0 {
			return nil
		}
		k := blobKey(b)
		blobs[string(k)] = b
		return k
	}
	if rec.Locked = ref(st.LockedBlock); rec.Locked != nil {
		rec.State.LockedBlock = nil
	}
	if rec.Valid = ref(st.ValidBlock); rec.Valid != nil {
		rec.State.ValidBlock = nil
	}
	if len(st.Proposals) > 0 {
		rec.State.Proposals = make([]consensus.Proposal, len(st.Proposals))
		rec.Proposals = make([][]byte, len(st.Proposals))
		for i, p := range st.Proposals {
			if k := ref(p.Block); k != nil {
				p.Block = nil
				rec.Proposals[i] = k
			}
			rec.State.Proposals[i] = p
		}
	}
	enc, err := encoding.Marshal(&rec)
	if err != nil {
		return fmt.Errorf("save consensus state: %w", err)
	}
	s.walMu.Lock()
	defer s.walMu.Unlock()
	err = s.db.Update(func(tx *bolt.Tx) error {
		bb := tx.Bucket(bucketBlobs)
		for k, v := range blobs {
			if bb.Get([]byte(k)) == nil {
				if err := bb.Put([]byte(k), v); err != nil {
					return err
				}
			}
		}
		// Drop the blobs the new record no longer refers to.
		var unused [][]byte
		c := bb.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if _, ok := blobs[string(k)]; !ok {
				unused = append(unused, bytes.Clone(k))
			}
		}
		for _, k := range unused {
			if err := bb.Delete(k); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketWAL).Put(walState, enc)
	})
	if err != nil {
		return fmt.Errorf("save consensus state at height %d round %d: %w", st.Height, st.Round, err)
	}
	return nil
}

// LoadConsensus returns the last saved consensus state, or nil and no error if none
// was ever saved.
func (s *Store) LoadConsensus() (*consensus.State, error) {
	var st *consensus.State
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketWAL).Get(walState)
		if v == nil {
			return nil
		}
		var rec walRecord
		if err := encoding.UnmarshalLax(v, &rec); err != nil {
			return fmt.Errorf("%w: consensus state: %v", ErrCorrupt, err)
		}
		bb := tx.Bucket(bucketBlobs)
		blob := func(k []byte) ([]byte, error) {
			if len(k) == 0 {
				return nil, nil
			}
			b := bb.Get(k)
			if b == nil {
				return nil, fmt.Errorf("%w: consensus state refers to a missing block %x", ErrCorrupt, k[:4])
			}
			return bytes.Clone(b), nil
		}
		var err error
		if len(rec.Locked) > 0 {
			if rec.State.LockedBlock, err = blob(rec.Locked); err != nil {
				return err
			}
		}
		if len(rec.Valid) > 0 {
			if rec.State.ValidBlock, err = blob(rec.Valid); err != nil {
				return err
			}
		}
		if len(rec.Proposals) > len(rec.State.Proposals) {
			return fmt.Errorf("%w: consensus state has %d proposal references for %d proposals", ErrCorrupt, len(rec.Proposals), len(rec.State.Proposals))
		}
		for i, k := range rec.Proposals {
			if len(k) > 0 {
				if rec.State.Proposals[i].Block, err = blob(k); err != nil {
					return err
				}
			}
		}
		st = &rec.State
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load consensus state: %w", err)
	}
	return st, nil
}
