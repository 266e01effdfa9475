// Package boltcheck guards a node's bbolt files (state.db, chain.db) against
// damage on disk: it reads both meta pages of a file before bbolt maps it, refuses
// a file that has no valid meta page or is shorter than its meta page says (bbolt
// would map it and die of SIGBUS on the first read past the end), turns memory
// faults and bbolt panics met while reading a damaged page into errors, and walks
// a file's pages for the checks of `plug node check`.
//
// bbolt has no exported API for any of this: its meta page type and validation
// live in go.etcd.io/bbolt/internal/common, and Open itself validates the metas
// only after mapping the file and never compares the file size with the
// high-water mark. So the meta page is read here from bbolt's on-disk format
// (version 2), which bbolt documents as stable.
package boltcheck

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Sentinel errors; an *Error wraps one of them.
var (
	// ErrCorrupt: the file is damaged (no valid meta page, a page that does not
	// parse, a record that does not decode).
	ErrCorrupt = errors.New("damaged")
	// ErrTruncated: the file is shorter than its meta page says. errors.Is(err,
	// ErrCorrupt) holds for it too.
	ErrTruncated = fmt.Errorf("%w: truncated", ErrCorrupt)
	// ErrLocked: another process (a running node) holds the file's lock.
	ErrLocked = errors.New("in use by another process")
)

// Error is a fault of one file. Its message names the file and the repair.
type Error struct {
	Path   string // the file
	Err    error  // ErrCorrupt, ErrTruncated or ErrLocked
	Detail string // what was found
	Cause  error  // the error found, if any (a store's own sentinel, say)
}

func (e *Error) Error() string {
	name, home := filepath.Base(e.Path), filepath.Dir(e.Path)
	if errors.Is(e.Err, ErrLocked) {
		return fmt.Sprintf("%s is in use by another process (is the node of %s running? stop it first): %s", e.Path, home, e.Detail)
	}
	what := "is damaged"
	if errors.Is(e.Err, ErrTruncated) {
		what = "is truncated"
	}
	return fmt.Sprintf("%s %s (%s): restore %s from a backup, or run `plug node resync --home %s` to move the databases aside and sync from peers",
		e.Path, what, e.Detail, name, home)
}

func (e *Error) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Err, e.Cause}
	}
	return []error{e.Err}
}

// Wrap returns err as an *Error of ErrCorrupt for path when errors.Is(err,
// sentinel) (a store's own ErrCorrupt) and it is not an *Error already; else err.
func Wrap(path string, sentinel, err error) error {
	var e *Error
	if err == nil || errors.As(err, &e) || !errors.Is(err, sentinel) {
		return err
	}
	return &Error{Path: path, Err: ErrCorrupt, Detail: err.Error(), Cause: err}
}

// Corrupt returns an *Error of ErrCorrupt for path, with detail formatted.
func Corrupt(path string, format string, args ...any) *Error {
	return &Error{Path: path, Err: ErrCorrupt, Detail: fmt.Sprintf(format, args...)}
}

// bbolt's on-disk format, version 2 (go.etcd.io/bbolt/internal/common): a page
// starts with a 16-byte header (id u64, flags u16, count u16, overflow u32); a
// meta page's body is magic u32, version u32, pageSize u32, flags u32, root
// bucket (root pgid u64, sequence u64), freelist pgid u64, pgid (high-water mark)
// u64, txid u64, checksum u64, where checksum is FNV-64a over the 56 bytes before
// it. Integers are in the machine's byte order.
const (
	pageHeaderSize = 16
	metaSize       = 64
	metaSumOffset  = 56
	magic          = 0xED0CDAED
	formatVersion  = 2
	metaPageFlag   = 0x04
	noFreelist     = ^uint64(0)
)

// Meta is one decoded meta page.
type Meta struct {
	Offset   int64  `json:"offset"`
	Valid    bool   `json:"valid"`
	Problem  string `json:"problem,omitempty"` // why it is not valid
	PageSize uint32 `json:"page_size,omitempty"`
	Root     uint64 `json:"root,omitempty"`
	Freelist uint64 `json:"freelist,omitempty"`
	Pgid     uint64 `json:"pgid,omitempty"` // pages in use: the file must hold Pgid*PageSize bytes
	Txid     uint64 `json:"txid,omitempty"`
}

// Info is what the meta pages of a file say.
type Info struct {
	Path  string `json:"path"`
	Size  int64  `json:"size"`
	Metas []Meta `json:"metas"`
	Used  *Meta  `json:"-"` // the meta bbolt opens the file with (valid, highest txid)
	Need  int64  `json:"need"`
	Empty bool   `json:"empty,omitempty"` // missing or 0 bytes: bbolt creates it
	Err   *Error `json:"-"`
}

func decodeMeta(buf []byte, off int64) Meta {
	m := Meta{Offset: off}
	if len(buf) < pageHeaderSize+metaSize {
		m.Problem = "short read"
		return m
	}
	ne := binary.NativeEndian
	b := buf[pageHeaderSize : pageHeaderSize+metaSize]
	if got := ne.Uint32(b[0:]); got != magic {
		m.Problem = fmt.Sprintf("magic %#x, want %#x", got, uint32(magic))
		return m
	}
	if v := ne.Uint32(b[4:]); v != formatVersion {
		m.Problem = fmt.Sprintf("format version %d, want %d", v, formatVersion)
		return m
	}
	h := fnv.New64a()
	h.Write(b[:metaSumOffset])
	if sum := ne.Uint64(b[metaSumOffset:]); sum != h.Sum64() {
		m.Problem = "checksum mismatch"
		return m
	}
	m.PageSize = ne.Uint32(b[8:])
	m.Root = ne.Uint64(b[16:])
	m.Freelist = ne.Uint64(b[32:])
	m.Pgid = ne.Uint64(b[40:])
	m.Txid = ne.Uint64(b[48:])
	switch {
	case m.PageSize < 512 || m.PageSize&(m.PageSize-1) != 0:
		m.Problem = fmt.Sprintf("page size %d", m.PageSize)
	case flags(buf) != metaPageFlag:
		m.Problem = fmt.Sprintf("page flags %#x, want a meta page", flags(buf))
	case m.Pgid < 2 || m.Root >= m.Pgid || m.Freelist >= m.Pgid && m.Freelist != noFreelist:
		m.Problem = fmt.Sprintf("root page %d or freelist page %d not below the high-water mark %d", m.Root, m.Freelist, m.Pgid)
	default:
		m.Valid = true
	}
	return m
}

func flags(page []byte) uint16 { return binary.NativeEndian.Uint16(page[8:]) }

// ReadInfo reads the meta pages of the file at path and checks them against the
// file's size. A missing or empty file is fine (bbolt creates it); otherwise
// Info.Err is an *Error of ErrCorrupt when no meta page is valid and of
// ErrTruncated when the file is shorter than the meta bbolt would use says. The
// returned error is for I/O failures only.
func ReadInfo(path string) (*Info, error) {
	in := &Info{Path: path}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		in.Empty = true
		return in, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if in.Size = st.Size(); in.Size == 0 {
		in.Empty = true
		return in, nil
	}
	read := func(off int64) (Meta, error) {
		buf := make([]byte, pageHeaderSize+metaSize)
		n, err := f.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return Meta{}, err
		}
		return decodeMeta(buf[:n], off), nil
	}
	m0, err := read(0)
	if err != nil {
		return nil, err
	}
	in.Metas = append(in.Metas, m0)
	// The second meta page is one page in; without a valid first one, try every
	// page size bbolt would (1 KiB to 16 MiB), as bbolt's Open does.
	if m0.Valid {
		m1, err := read(int64(m0.PageSize))
		if err != nil {
			return nil, err
		}
		in.Metas = append(in.Metas, m1)
	} else {
		for i := 0; i <= 14; i++ {
			off := int64(1024) << i
			if off >= in.Size {
				break
			}
			m1, err := read(off)
			if err != nil {
				return nil, err
			}
			if m1.Valid && int64(m1.PageSize) == off {
				in.Metas = append(in.Metas, m1)
				break
			}
		}
		if len(in.Metas) == 1 {
			in.Metas = append(in.Metas, Meta{Offset: -1, Problem: "no valid second meta page at any page size"})
		}
	}
	for i := range in.Metas {
		if m := &in.Metas[i]; m.Valid && (in.Used == nil || m.Txid > in.Used.Txid) {
			in.Used = m
		}
	}
	if in.Used == nil {
		in.Err = Corrupt(path, "no valid meta page: %s; %s", in.Metas[0].Problem, in.Metas[1].Problem)
		return in, nil
	}
	in.Need = int64(in.Used.Pgid) * int64(in.Used.PageSize)
	if in.Size < in.Need || in.Size < 2*int64(in.Used.PageSize) {
		in.Err = &Error{Path: path, Err: ErrTruncated, Detail: fmt.Sprintf("%d bytes, but its meta page (transaction %d) says %d pages of %d bytes, %d bytes",
			in.Size, in.Used.Txid, in.Used.Pgid, in.Used.PageSize, in.Need)}
	}
	return in, nil
}

// CheckFile returns ReadInfo's verdict on the file at path as an error: nil when
// bbolt may map it.
func CheckFile(path string) error {
	in, err := ReadInfo(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if in.Err != nil {
		return in.Err
	}
	return nil
}

// Guard runs fn with memory faults turned into panics (debug.SetPanicOnFault)
// and turns a panic of fn into an *Error of ErrCorrupt for path. A damaged page
// can make bbolt follow a page number past the end of the file or trip one of its
// assertions; reads of the node go through Guard so that this is reported as the
// file's damage instead of killing the process. Only reads: a write transaction
// that panics half way is not something to carry on from.
func Guard(path string, fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			if f, ok := r.(interface{ Addr() uintptr }); ok {
				// A fault with SetPanicOnFault: the address is in bbolt's map.
				err = Corrupt(path, "reading it failed: memory fault at %#x (a page past the end of the file)", f.Addr())
			} else {
				err = Corrupt(path, "reading it failed: %v", r)
			}
		}
	}()
	return fn()
}

// QuickWalkLimit is the largest file Open walks in full before it returns: a
// walk reads every page (0.48 s for 253 MiB in the page cache on the 2-core
// development VM, TestWalkSpeed). Bigger files are walked by `plug node check`
// only.
const QuickWalkLimit = 256 << 20

// Open checks the file at path (CheckFile), opens it with bbolt under Guard and,
// when the file is at most QuickWalkLimit bytes, walks it (Walk). Every fault
// found is an *Error naming the file.
func Open(path string, opts *bolt.Options) (*bolt.DB, error) {
	if err := CheckFile(path); err != nil {
		return nil, err
	}
	var db *bolt.DB
	err := Guard(path, func() error {
		var err error
		db, err = bolt.Open(path, 0o600, opts)
		return err
	})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, &Error{Path: path, Err: ErrLocked, Detail: "its lock was not released in time"}
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, Corrupt(path, "bbolt: %v", err)
	case err != nil:
		return nil, err
	}
	if st, err := os.Stat(path); err == nil && st.Size() <= QuickWalkLimit {
		if _, err := Walk(db, path, nil); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

// WalkStats counts what Walk read.
type WalkStats struct {
	Buckets int   `json:"buckets"`
	Keys    int64 `json:"keys"`
	Bytes   int64 `json:"bytes"` // keys and values
}

// Walk reads every bucket, key and value of db in one read transaction under
// Guard, touching every page of every value, and reports the first fault as an
// *Error of ErrCorrupt for path. progress, if not nil, is called now and then
// with the bytes read so far. bbolt pages carry no checksum: Walk finds pages
// that no longer parse, not changed bytes inside a value (the stores' own checks
// do: hashes of blocks and state nodes).
func Walk(db *bolt.DB, path string, progress func(bytes int64)) (WalkStats, error) {
	var st WalkStats
	var sink byte
	last := time.Now()
	var walk func(b *bolt.Bucket) error
	walk = func(b *bolt.Bucket) error {
		st.Buckets++
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			st.Keys++
			st.Bytes += int64(len(k) + len(v))
			if v == nil {
				child := b.Bucket(k)
				if child == nil {
					continue // a key with an empty value
				}
				if err := walk(child); err != nil {
					return err
				}
				continue
			}
			for i := 0; i < len(v); i += 4096 {
				sink ^= v[i]
			}
			if len(v) > 0 {
				sink ^= v[len(v)-1]
			}
			if progress != nil && st.Keys%4096 == 0 && time.Since(last) > 100*time.Millisecond {
				progress(st.Bytes)
				last = time.Now()
			}
		}
		return nil
	}
	err := Guard(path, func() error {
		return db.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
				if err := walk(b); err != nil {
					return fmt.Errorf("bucket %q: %w", name, err)
				}
				return nil
			})
		})
	})
	_ = sink
	if progress != nil {
		progress(st.Bytes)
	}
	return st, err
}

// Check runs bbolt's consistency check (Tx.Check: page types, references,
// freelist, key order) and returns up to limit of its findings. Run Walk first:
// Tx.Check reads pages in a goroutine of its own, where a page number past the
// end of the file would be a fault that nothing can recover, and a file Walk
// read through has no such reference.
func Check(db *bolt.DB, limit int) ([]string, error) {
	var found []string
	err := db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			if len(found) < limit {
				found = append(found, err.Error())
			} else if len(found) == limit {
				found = append(found, "… (more)")
			}
		}
		return nil
	})
	return found, err
}
