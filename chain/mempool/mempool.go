// Package mempool holds a node's pending transactions: those it received and
// checked but that no committed block holds yet.
//
// The pool is bounded (transactions, bytes, and a nonce window per signer) and never
// grows past its bounds: a full pool refuses new transactions with ErrFull, which
// gateways pass back to clients as back-pressure. Signatures are verified by the
// caller, in batches, before Add; the pool only records that a transaction passed.
//
// Reap returns transactions in an order that executes: for every signer, nonces
// consecutive from its committed nonce. Update removes what a block committed and
// whatever it made stale.
//
// A transaction never leaves the pool silently. One that a block made stale (its
// signer's nonce was used by another transaction, perhaps admitted first by
// another node), one refused at admission because another transaction held its
// (signer, nonce) and that then lost, and one a proposer found the executor
// rejects, are remembered as dropped, with the reason, for the last
// DefaultMaxDropped of them: Lookup answers pending, dropped or unknown.
package mempool

import (
	"container/heap"
	"errors"
	"fmt"
	"sync"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/tx"
)

// Defaults of the options.
const (
	DefaultMaxTxs       = 50_000
	DefaultMaxBytes     = 64 << 20
	DefaultMaxPerSender = 1_000
	// DefaultMaxDropped bounds the dropped transactions remembered, and the
	// conflicting ones (refused for a (signer, nonce) another pending
	// transaction holds) watched until a block settles which one won.
	DefaultMaxDropped = 10_000
)

// Sentinel errors of Add; callers branch on them with errors.Is.
var (
	// ErrFull: the pool is at its bound; the client should try again later.
	ErrFull = errors.New("mempool full, try again later")
	// ErrDuplicate: the transaction, or another one with the same signer and
	// nonce, is already pending.
	ErrDuplicate = errors.New("transaction already pending")
	// ErrStaleNonce: a signer's nonce is below its committed nonce (a replay).
	ErrStaleNonce = errors.New("stale nonce")
	// ErrNonceGap: a signer's nonce is too far ahead of its committed nonce.
	ErrNonceGap = errors.New("nonce too far ahead")
	// ErrBadTx: the transaction's shape or signatures are invalid.
	ErrBadTx = errors.New("invalid transaction")
	// ErrTooLarge: the transaction exceeds tx.MaxTxSize or the pool's byte bound.
	ErrTooLarge = errors.New("transaction too large")
)

// NonceReader gives the committed (next expected) nonce of an address.
type NonceReader interface {
	Nonce(addr crypto.Address) (uint64, error)
}

// Option configures a Pool.
type Option func(*Pool)

// MaxTxs bounds how many transactions the pool holds.
func MaxTxs(n int) Option { return func(p *Pool) { p.maxTxs = n } }

// MaxBytes bounds the total encoded size of the transactions the pool holds.
func MaxBytes(n int) Option { return func(p *Pool) { p.maxBytes = n } }

// MaxPerSender bounds how far ahead of its committed nonce a signer's nonce may be,
// hence how many transactions of one signer the pool holds.
func MaxPerSender(n int) Option { return func(p *Pool) { p.maxPerSender = n } }

// MaxDropped bounds how many dropped transactions the pool remembers, and how
// many conflicting ones it watches.
func MaxDropped(n int) Option { return func(p *Pool) { p.maxDropped = max(n, 1) } }

// ChainID makes Add refuse transactions of other chains (ErrBadTx wrapping
// tx.ErrWrongChain). Without it the pool accepts any chain id.
func ChainID(id string) Option { return func(p *Pool) { p.chainID = id } }

// entry is one pending transaction.
type entry struct {
	t       *tx.Tx
	id      hash.Hash
	size    int
	seq     uint64           // arrival order
	signers []crypto.Address // in the transaction's signer order
	nonces  []uint64
	mark    uint64 // reap generation that queued it
}

// Drop says why a transaction left the pool without being committed.
type Drop struct {
	ID hash.Hash
	// Signer and Nonce name the (signer, nonce) the transaction carried that
	// another transaction used; Signer is zero when it left for another reason.
	Signer crypto.Address
	Nonce  uint64
	// By is the transaction that used the nonce and Height its block, when
	// this pool saw that block (By is zero otherwise).
	By     hash.Hash
	Height uint64
	// Reason says why in words when the nonce is not the reason (e.g. the
	// executor's rejection).
	Reason string
}

// String says why the transaction was dropped, for people.
func (d Drop) String() string {
	switch {
	case d.Signer.IsZero():
		return d.Reason
	case d.By.IsZero():
		return fmt.Sprintf("nonce %d of signer %s was used by another transaction", d.Nonce, d.Signer)
	}
	return fmt.Sprintf("nonce %d of signer %s was used by transaction %s committed at height %d", d.Nonce, d.Signer, d.By, d.Height)
}

// State is what a pool knows of a transaction.
type State int

// States of Lookup.
const (
	// Unknown: never admitted, or forgotten (dropped long ago, or before a restart).
	Unknown State = iota
	// Pending: admitted, not committed yet.
	Pending
	// Dropped: it left the pool without being committed, and never will be.
	Dropped
)

// Pool is a bounded set of pending transactions. It is safe for concurrent use.
type Pool struct {
	maxTxs, maxBytes, maxPerSender int
	maxDropped                     int
	chainID                        string

	mu       sync.Mutex
	byID     map[hash.Hash]*entry
	bySigner map[crypto.Address]map[uint64]*entry
	bytes    int
	seq      uint64
	gen      uint64
	// conflicts are transactions refused for a (signer, nonce) that another
	// pending transaction holds, by signer: the block that uses the nonce
	// tells whether they lost. Bounded by maxDropped, oldest forgotten first.
	conflicts   map[crypto.Address]map[hash.Hash]*entry
	nConflicts  int
	conflictSeq []conflictRef
	dropped     dropLog
}

// conflictRef is a watched conflict, in arrival order, for eviction.
type conflictRef struct {
	signer crypto.Address
	id     hash.Hash
}

// dropLog remembers the last max drops, oldest forgotten first.
type dropLog struct {
	byID  map[hash.Hash]Drop
	order []hash.Hash
	max   int
}

func (l *dropLog) add(d Drop) {
	if l.byID == nil {
		l.byID = map[hash.Hash]Drop{}
	}
	if _, ok := l.byID[d.ID]; ok {
		return
	}
	for len(l.order) >= l.max && len(l.order) > 0 {
		delete(l.byID, l.order[0])
		l.order = l.order[1:]
	}
	l.byID[d.ID] = d
	l.order = append(l.order, d.ID)
}

// New returns an empty pool.
func New(opts ...Option) *Pool {
	p := &Pool{
		maxTxs: DefaultMaxTxs, maxBytes: DefaultMaxBytes, maxPerSender: DefaultMaxPerSender, maxDropped: DefaultMaxDropped,
		byID:      map[hash.Hash]*entry{},
		bySigner:  map[crypto.Address]map[uint64]*entry{},
		conflicts: map[crypto.Address]map[hash.Hash]*entry{},
	}
	for _, o := range opts {
		o(p)
	}
	p.dropped.max = p.maxDropped
	return p
}

// Add admits t, whose signatures the caller checked: sigErr is that check's verdict
// (as from tx.VerifyProofs) and a non-nil sigErr refuses t with ErrBadTx. nonces
// gives the committed nonces. It returns t's ID. Of two transactions with the same
// signer and nonce, the first one stays; the second is refused with ErrDuplicate
// and watched: when a block uses the nonce for another transaction, Lookup
// reports it dropped.
func (p *Pool) Add(t *tx.Tx, sigErr error, nonces NonceReader) (hash.Hash, error) {
	if t == nil {
		return hash.Hash{}, fmt.Errorf("%w: nil transaction", ErrBadTx)
	}
	if sigErr != nil {
		return hash.Hash{}, fmt.Errorf("%w: %w", ErrBadTx, sigErr)
	}
	if err := t.CheckShape(); err != nil {
		return hash.Hash{}, fmt.Errorf("%w: %w", ErrBadTx, err)
	}
	if p.chainID != "" && t.Body.ChainID != p.chainID {
		return hash.Hash{}, fmt.Errorf("%w: %w: transaction is for %q, this is %q", ErrBadTx, tx.ErrWrongChain, t.Body.ChainID, p.chainID)
	}
	enc, err := t.Encode()
	if err != nil {
		return hash.Hash{}, fmt.Errorf("%w: %w", ErrBadTx, err)
	}
	// tx.ID is the hash of this same encoding; hashing it here saves a second one.
	id := hash.Sum(hash.DomainTxID, enc)
	if len(enc) > tx.MaxTxSize || len(enc) > p.maxBytes {
		return id, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(enc), min(tx.MaxTxSize, p.maxBytes))
	}
	e := &entry{t: t, id: id, size: len(enc),
		signers: make([]crypto.Address, len(t.Body.Signers)), nonces: make([]uint64, len(t.Body.Signers))}
	for i, s := range t.Body.Signers {
		e.signers[i], e.nonces[i] = s.Key.Address(), s.Nonce
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.byID[id]; ok {
		return id, fmt.Errorf("%w: %s", ErrDuplicate, id.Short())
	}
	// Nonces are read under the lock so that an Update cannot slip in between the
	// check and the insertion and leave a stale transaction behind.
	for i, a := range e.signers {
		c, err := nonces.Nonce(a)
		if err != nil {
			return id, fmt.Errorf("mempool: read nonce of %s: %w", a, err)
		}
		n := e.nonces[i]
		switch {
		case n < c:
			return id, fmt.Errorf("%w: signer %s has nonce %d committed, transaction carries %d", ErrStaleNonce, a, c, n)
		case n-c >= uint64(p.maxPerSender):
			return id, fmt.Errorf("%w: signer %s has nonce %d committed, transaction carries %d (window %d)", ErrNonceGap, a, c, n, p.maxPerSender)
		}
		if o := p.bySigner[a][n]; o != nil {
			p.watch(a, e)
			return id, fmt.Errorf("%w: signer %s already has transaction %s pending at nonce %d: wait for it, or use nonce %d", ErrDuplicate, a, o.id, n, p.next(a, c))
		}
	}
	if len(p.byID) >= p.maxTxs || p.bytes+e.size > p.maxBytes {
		return id, fmt.Errorf("%w (%d transactions, %d bytes pending)", ErrFull, len(p.byID), p.bytes)
	}
	p.seq++
	e.seq = p.seq
	p.unwatch(e)
	p.byID[id] = e
	p.bytes += e.size
	for i, a := range e.signers {
		m := p.bySigner[a]
		if m == nil {
			m = map[uint64]*entry{}
			p.bySigner[a] = m
		}
		m[e.nonces[i]] = e
	}
	return id, nil
}

// remove drops e from every index. The caller holds mu.
func (p *Pool) remove(e *entry) {
	delete(p.byID, e.id)
	p.bytes -= e.size
	for i, a := range e.signers {
		m := p.bySigner[a]
		if m[e.nonces[i]] == e {
			delete(m, e.nonces[i])
			if len(m) == 0 {
				delete(p.bySigner, a)
			}
		}
	}
}

// Remove drops the transactions with the given IDs, if pending (for example ones
// a proposer found rejected when building a block).
func (p *Pool) Remove(ids ...hash.Hash) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range ids {
		if e := p.byID[id]; e != nil {
			p.remove(e)
		}
	}
}

// Update is called after the block at height is committed, with its
// transactions and the nonces of the new committed state: it drops the committed
// transactions and every pending transaction of their signers whose nonce is now
// stale, remembering those as dropped with the transaction that used the nonce,
// and settles the conflicts the block decided.
func (p *Pool) Update(height uint64, committed []*tx.Tx, nonces NonceReader) {
	type slot struct {
		a crypto.Address
		n uint64
	}
	used := map[slot]hash.Hash{}
	touched := map[crypto.Address]bool{}
	ids := make(map[hash.Hash]bool, len(committed))
	for _, t := range committed {
		if t == nil {
			continue
		}
		id, err := t.ID()
		if err != nil {
			continue
		}
		ids[id] = true
		for _, s := range t.Body.Signers {
			a := s.Key.Address()
			touched[a] = true
			used[slot{a, s.Nonce}] = id
		}
	}
	drop := func(e *entry, a crypto.Address, n uint64) {
		d := Drop{ID: e.id, Signer: a, Nonce: n}
		if by, ok := used[slot{a, n}]; ok {
			d.By, d.Height = by, height
		}
		p.dropped.add(d)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range ids {
		if e := p.byID[id]; e != nil {
			p.remove(e)
		}
	}
	var stale []*entry
	for a := range touched {
		m, w := p.bySigner[a], p.conflicts[a]
		if len(m) == 0 && len(w) == 0 {
			continue
		}
		c, err := nonces.Nonce(a)
		if err != nil {
			continue // kept; a later Update or Reap sees it again
		}
		stale = stale[:0]
		for n, e := range m {
			if n < c {
				stale = append(stale, e)
			}
		}
		for _, e := range stale {
			if p.byID[e.id] == e {
				p.remove(e)
				drop(e, a, e.nonceOf(a))
			}
		}
		for id, e := range w {
			switch n := e.nonceOf(a); {
			case ids[id]:
				p.unwatch(e) // it won: committed
			case n < c:
				p.unwatch(e)
				drop(e, a, n)
			}
		}
	}
}

// nonceOf returns the nonce e carries for signer a.
func (e *entry) nonceOf(a crypto.Address) uint64 {
	for i, s := range e.signers {
		if s == a {
			return e.nonces[i]
		}
	}
	return 0
}

// watch keeps e, refused because another pending transaction holds its nonce
// of signer a, until a block settles the conflict. The caller holds mu.
func (p *Pool) watch(a crypto.Address, e *entry) {
	w := p.conflicts[a]
	if w == nil {
		w = map[hash.Hash]*entry{}
		p.conflicts[a] = w
	}
	if _, ok := w[e.id]; ok {
		return
	}
	// Only what settling the conflict needs: not the transaction's bytes.
	e = &entry{id: e.id, signers: e.signers, nonces: e.nonces}
	for p.nConflicts >= p.maxDropped && len(p.conflictSeq) > 0 {
		old := p.conflictSeq[0]
		p.conflictSeq = p.conflictSeq[1:]
		if ow := p.conflicts[old.signer]; ow != nil {
			if _, ok := ow[old.id]; ok {
				delete(ow, old.id)
				p.nConflicts--
				if len(ow) == 0 {
					delete(p.conflicts, old.signer)
				}
			}
		}
	}
	w[e.id] = e
	p.nConflicts++
	p.conflictSeq = append(p.conflictSeq, conflictRef{a, e.id})
}

// unwatch forgets e as a conflict of any of its signers. The caller holds mu.
func (p *Pool) unwatch(e *entry) {
	for _, a := range e.signers {
		if w := p.conflicts[a]; w != nil {
			if _, ok := w[e.id]; ok {
				delete(w, e.id)
				p.nConflicts--
				if len(w) == 0 {
					delete(p.conflicts, a)
				}
			}
		}
	}
	if len(p.conflictSeq) > 2*p.maxDropped {
		// Compact the eviction order: most of it names conflicts settled since.
		kept := p.conflictSeq[:0]
		for _, r := range p.conflictSeq {
			if _, ok := p.conflicts[r.signer][r.id]; ok {
				kept = append(kept, r)
			}
		}
		p.conflictSeq = kept
	}
}

// Drop removes the pending transaction id, if any, and remembers it as dropped
// for reason: for one a proposer found the executor rejects.
func (p *Pool) Drop(id hash.Hash, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.byID[id]; e != nil {
		p.remove(e)
		p.dropped.add(Drop{ID: id, Reason: reason})
	}
}

// Lookup says what the pool knows of the transaction id: Pending, Dropped (with
// why) or Unknown.
func (p *Pool) Lookup(id hash.Hash) (State, Drop) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.byID[id]; ok {
		return Pending, Drop{}
	}
	if d, ok := p.dropped.byID[id]; ok {
		return Dropped, d
	}
	return Unknown, Drop{}
}

// Next returns the nonce a new transaction of signer a should carry, given its
// committed nonce: the first one from committed that no pending transaction of
// a holds. pending is how many transactions of a are pending (beyond a gap
// too).
func (p *Pool) Next(a crypto.Address, committed uint64) (next uint64, pending int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.next(a, committed), len(p.bySigner[a])
}

// next is Next without the lock.
func (p *Pool) next(a crypto.Address, committed uint64) uint64 {
	m := p.bySigner[a]
	n := committed
	for m[n] != nil {
		n++
	}
	return n
}

// Reap returns pending transactions ready for a block, at most maxTxs of them and
// maxBytes of encoded size (a non-positive limit means none), in an order that
// executes: every signer's nonces are consecutive from its committed nonce, and a
// transaction comes only once every one of its signers has reached its nonce.
// Among ready transactions, the earliest arrival goes first. The pool is not
// changed. The cost is O(n log n) in the pool's size.
func (p *Pool) Reap(maxTxs, maxBytes int, nonces NonceReader) []*tx.Tx {
	p.mu.Lock()
	defer p.mu.Unlock()
	if maxTxs <= 0 {
		maxTxs = len(p.byID)
	}
	if maxBytes <= 0 {
		maxBytes = int(^uint(0) >> 1)
	}
	p.gen++
	gen := p.gen
	// next is every signer's next nonce as the reaped prefix leaves it; a signer
	// whose nonce cannot be read has no entry and nothing of it is reaped.
	next := make(map[crypto.Address]uint64, len(p.bySigner))
	for a := range p.bySigner {
		if c, err := nonces.Nonce(a); err == nil {
			next[a] = c
		}
	}
	ready := func(e *entry) bool {
		for i, a := range e.signers {
			if n, ok := next[a]; !ok || n != e.nonces[i] {
				return false
			}
		}
		return true
	}
	var q queue
	for a, m := range p.bySigner {
		n, ok := next[a]
		if !ok {
			continue
		}
		if e := m[n]; e != nil && e.mark != gen && ready(e) {
			e.mark = gen
			q = append(q, e)
		}
	}
	heap.Init(&q)
	out := make([]*tx.Tx, 0, min(maxTxs, len(p.byID)))
	size := 0
	for len(q) > 0 && len(out) < maxTxs {
		e := heap.Pop(&q).(*entry)
		if size+e.size > maxBytes {
			continue // too big for what is left; its successors wait for the next block
		}
		out = append(out, e.t)
		size += e.size
		for i, a := range e.signers {
			next[a] = e.nonces[i] + 1
		}
		for _, a := range e.signers {
			if f := p.bySigner[a][next[a]]; f != nil && f.mark != gen && ready(f) {
				f.mark = gen
				heap.Push(&q, f)
			}
		}
	}
	return out
}

// Has reports whether the transaction with ID id is pending.
func (p *Pool) Has(id hash.Hash) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.byID[id]
	return ok
}

// Get returns the pending transaction with ID id, or nil.
func (p *Pool) Get(id hash.Hash) *tx.Tx {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.byID[id]; e != nil {
		return e.t
	}
	return nil
}

// Len returns how many transactions are pending.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.byID)
}

// Bytes returns the total encoded size of the pending transactions.
func (p *Pool) Bytes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bytes
}

// queue is a min-heap of entries by arrival.
type queue []*entry

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].seq < q[j].seq }
func (q queue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)        { *q = append(*q, x.(*entry)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}
