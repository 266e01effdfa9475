package exec

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/chain/transform"
)

// Reader is the committed state a block executes on: raw canonical value bytes.
// *state.Store satisfies it.
type Reader interface {
	Get(key string) ([]byte, bool, error)
}

// Limits on what a transform may store.
const (
	// MaxValueSize is the largest encoded value a transform may write.
	MaxValueSize = 256 << 10
	// MaxKeySize is the longest key a transform may declare.
	MaxKeySize = 512
)

// ErrValueTooLarge: a transform wrote a value over MaxValueSize.
var ErrValueTooLarge = errors.New("value too large")

// ErrBadKey: a declared key is empty or over MaxKeySize.
var ErrBadKey = errors.New("bad key")

// entry is one written key: its new value, or a deletion.
type entry struct {
	key string
	val []byte
	del bool
}

// overlay is the block's writes on top of the committed state. It is written only
// between levels of the schedule, so the transactions of a level read it without locks.
type overlay struct {
	base   Reader
	models *transform.Models
	writes map[string]entry
	// cache holds base values prefetched for the block's declared keys; it is
	// filled before execution and only read during it.
	cache map[string]entry
}

// ManyReader is a Reader that can also fetch many keys at once (one read
// transaction, in key order); the executor then prefetches every declared key of a
// block before running it.
type ManyReader interface {
	Reader
	GetMany(keys []string) (values [][]byte, found []bool, err error)
}

// prefetch loads keys from the base into the cache.
func (o *overlay) prefetch(keys []string) error {
	mr, ok := o.base.(ManyReader)
	if !ok || len(keys) == 0 {
		return nil
	}
	// Two halves in two read transactions: the reads are independent and bbolt
	// serves concurrent readers without locking.
	half := len(keys) / 2
	parts := [][]string{keys[:half], keys[half:]}
	vals, found, errs := make([][][]byte, 2), make([][]bool, 2), make([]error, 2)
	var wg sync.WaitGroup
	for p := range parts {
		wg.Go(func() { vals[p], found[p], errs[p] = mr.GetMany(parts[p]) })
	}
	wg.Wait()
	o.cache = make(map[string]entry, len(keys))
	for p, part := range parts {
		if errs[p] != nil {
			return fmt.Errorf("prefetch %d keys: %w", len(keys), errs[p])
		}
		for i, k := range part {
			o.cache[k] = entry{key: k, val: vals[p][i], del: !found[p][i]}
		}
	}
	return nil
}

func newOverlay(base Reader, models *transform.Models) *overlay {
	return &overlay{base: base, models: models, writes: map[string]entry{}}
}

func (o *overlay) raw(key string) ([]byte, bool, error) {
	if e, ok := o.writes[key]; ok {
		return e.val, !e.del, nil
	}
	if e, ok := o.cache[key]; ok {
		return e.val, !e.del, nil
	}
	v, ok, err := o.base.Get(key)
	if err != nil {
		return nil, false, fmt.Errorf("read %q: %w", key, err)
	}
	return v, ok, nil
}

// Get decodes key into dst, or its model's default when missing. It makes the
// overlay a rbac.Reader and a validator.Getter for the block's post-state.
func (o *overlay) Get(key string, dst any) (bool, error) {
	v, ok, err := o.raw(key)
	if err != nil {
		return false, err
	}
	return decodeOrDefault(o.models, key, v, ok, dst)
}

func decodeOrDefault(ms *transform.Models, key string, v []byte, found bool, dst any) (bool, error) {
	if !found {
		return false, ms.SetDefault(key, dst)
	}
	if err := encoding.UnmarshalLax(v, dst); err != nil {
		return true, fmt.Errorf("state key %q: %w", key, err)
	}
	return true, nil
}

func (o *overlay) apply(ws []entry) {
	for _, e := range ws {
		o.writes[e.key] = e
	}
}

// changes returns the block's writes as state changes, sorted by key.
func (o *overlay) changes() []state.Change {
	out := make([]state.Change, 0, len(o.writes))
	for _, e := range o.writes {
		out = append(out, state.Change{Key: e.key, Value: e.val, Delete: e.del})
	}
	slices.SortFunc(out, func(a, b state.Change) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// txView is the transform.State one transaction runs against: only its declared
// keys (and reads of the rbac/ namespace), with its writes buffered until it succeeds.
type txView struct {
	block  *overlay
	reads  []string
	writes []string
	buf    []entry
}

var _ transform.State = (*txView)(nil)

func contains(keys []string, k string) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

func (v *txView) Get(key string, dst any) (bool, error) {
	if !contains(v.writes, key) && !contains(v.reads, key) && !strings.HasPrefix(key, rbac.Prefix) {
		return false, fmt.Errorf("%w: read of %q", transform.ErrUndeclaredKey, key)
	}
	for i := len(v.buf) - 1; i >= 0; i-- {
		if v.buf[i].key == key {
			e := v.buf[i]
			return decodeOrDefault(v.block.models, key, e.val, !e.del, dst)
		}
	}
	return v.block.Get(key, dst)
}

func (v *txView) writable(key string) error {
	if contains(v.writes, key) {
		return nil
	}
	if contains(v.reads, key) {
		return fmt.Errorf("%w: write of %q", transform.ErrReadOnlyKey, key)
	}
	return fmt.Errorf("%w: write of %q", transform.ErrUndeclaredKey, key)
}

func (v *txView) Set(key string, val any) error {
	if err := v.writable(key); err != nil {
		return err
	}
	if err := v.block.models.Check(key, val); err != nil {
		return err
	}
	b, err := encoding.Marshal(val)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", transform.ErrSchema, key, err)
	}
	if len(b) > MaxValueSize {
		return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrValueTooLarge, key, len(b), MaxValueSize)
	}
	v.put(entry{key: key, val: b})
	return nil
}

func (v *txView) Delete(key string) error {
	if err := v.writable(key); err != nil {
		return err
	}
	v.put(entry{key: key, del: true})
	return nil
}

func (v *txView) put(e entry) {
	for i := range v.buf {
		if v.buf[i].key == e.key {
			v.buf[i] = e
			return
		}
	}
	v.buf = append(v.buf, e)
}
