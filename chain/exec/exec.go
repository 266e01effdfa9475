// Package exec executes a block's transactions against the committed state. It
// schedules them by the keys their transforms declare: transactions whose key sets
// do not conflict run in parallel, conflicting ones in block order, and the outcome
// (state changes, receipts) is bit for bit that of running them one by one.
//
// A transaction is rejected (no state change at all) when it cannot be authenticated:
// bad shape or signature, wrong chain, unknown type, undecodable payload, wrong nonce.
// Otherwise it runs: RBAC, required signatures, Verify, Apply. If any of these fails
// it is failed: everything its transform wrote is rolled back, its signers' nonces are
// still consumed (so the same signed transaction can never be replayed later), and
// the receipt records why.
package exec

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/proof"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
)

// NonceKey is where addr's next nonce is stored.
func NonceKey(addr crypto.Address) string { return "nonce/" + addr.String() }

// AddModels registers the executor's own models (nonces).
func AddModels(ms *transform.Models) {
	ms.MustAdd(transform.Model{Name: "nonce", Prefix: "nonce/", Default: func() any { return uint64(0) }})
}

// ErrPanic: a transform panicked; the transaction failed and nothing it wrote stays.
var ErrPanic = errors.New("transform panicked")

// Code is a receipt's outcome.
type Code uint8

// Receipt codes.
const (
	// OK: the transform applied.
	OK Code = 0
	// Failed: authenticated, but refused by RBAC, a missing signature or the
	// transform; nonces consumed, nothing else changed.
	Failed Code = 1
	// Rejected: not authenticated (signature, nonce, chain, type, encoding); nothing
	// changed. A valid block holds no rejected transaction.
	Rejected Code = 2
)

func (c Code) String() string {
	switch c {
	case OK:
		return "ok"
	case Failed:
		return "failed"
	case Rejected:
		return "rejected"
	}
	return fmt.Sprintf("code(%d)", uint8(c))
}

// Receipt records what became of one transaction. Receipts are hashed into the
// block header, so Error holds only deterministic text.
type Receipt struct {
	TxID  hash.Hash `cbor:"1,keyasint" json:"tx_id"`
	Code  Code      `cbor:"2,keyasint" json:"code"`
	Error string    `cbor:"3,keyasint,omitempty" json:"error,omitempty"`
	// Skipped lists the parts of a transform.Partial that did not apply, when
	// the transaction as a whole did.
	Skipped []transform.Skip `cbor:"4,keyasint,omitempty" json:"skipped,omitempty"`
	// Err is the error behind Error, for errors.Is; it is not encoded.
	Err error `cbor:"-" json:"-"`
}

// Env is the block a batch of transactions executes in.
type Env struct {
	ChainID string
	Height  uint64
	// Time is the agreed block time, Unix milliseconds.
	Time int64
}

// Executor runs blocks. It is safe for concurrent use by one block at a time per
// overlay; its registries must not change while it runs.
type Executor struct {
	reg     *transform.Registry
	models  *transform.Models
	workers int
}

// Option configures an Executor.
type Option func(*Executor)

// WithWorkers sets how many goroutines run a level of the schedule; 1 runs every
// transaction on the caller's goroutine. The default is runtime.GOMAXPROCS(0).
func WithWorkers(n int) Option {
	return func(e *Executor) {
		if n > 0 {
			e.workers = n
		}
	}
}

// New returns an executor for the transforms of reg and the models of ms.
func New(reg *transform.Registry, ms *transform.Models, opts ...Option) *Executor {
	e := &Executor{reg: reg, models: ms, workers: runtime.GOMAXPROCS(0)}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Result is the outcome of executing a block.
type Result struct {
	// Receipts, one per transaction, in block order.
	Receipts []Receipt
	// Changes to the state, sorted by key, ready for state.Store.Stage.
	Changes []state.Change
	post    *overlay
}

// Get reads the state after the block (committed state plus the block's changes).
func (r *Result) Get(key string, dst any) (bool, error) { return r.post.Get(key, dst) }

// Finalize runs one of the chain's end-of-block rules after the block's
// transactions: fn sees the state after them, may read reads and writes and
// write writes (the declared-key discipline of transforms), and what it writes is
// folded into Changes. An error leaves the result unchanged. The rule is part of
// block execution, so block.Build and block.Check must run the same ones.
func (r *Result) Finalize(reads, writes []string, fn func(st transform.State) error) error {
	v := &txView{block: r.post, reads: reads, writes: writes}
	if err := fn(v); err != nil {
		return err
	}
	r.post.apply(v.buf)
	r.Changes = r.post.changes()
	return nil
}

// ReceiptsRoot is the ordered-list Merkle root of the receipts.
func (r *Result) ReceiptsRoot() hash.Hash {
	leaves := make([]hash.Hash, len(r.Receipts))
	for i := range r.Receipts {
		leaves[i] = encoding.MustHash(hash.DomainReceipt, &r.Receipts[i])
	}
	return proof.ListRoot(leaves)
}

// prepared is a transaction made ready for scheduling.
type prepared struct {
	t       *tx.Tx
	id      hash.Hash
	tr      transform.Transform
	ctx     transform.Context
	reads   []string
	writes  []string // includes the signers' nonce keys
	barrier bool     // writes the rbac/ namespace
	reject  error
}

// Execute runs txs in env on top of base, in parallel where their keys allow.
// sigs holds each transaction's signature check (as from tx.VerifyProofs, which
// mempools run ahead of time); nil makes Execute verify them itself, in one batch.
func (e *Executor) Execute(base Reader, env Env, txs []*tx.Tx, sigs []error) (*Result, error) {
	return e.execute(base, env, txs, sigs, false)
}

// ExecuteSerial runs txs one by one in block order on the caller's goroutine. It is
// the reference Execute must equal, bit for bit.
func (e *Executor) ExecuteSerial(base Reader, env Env, txs []*tx.Tx, sigs []error) (*Result, error) {
	return e.execute(base, env, txs, sigs, true)
}

func (e *Executor) execute(base Reader, env Env, txs []*tx.Tx, sigs []error, serial bool) (*Result, error) {
	if sigs == nil {
		sigs = tx.VerifyProofs(txs)
	}
	if len(sigs) != len(txs) {
		return nil, fmt.Errorf("execute: %d signature results for %d transactions", len(sigs), len(txs))
	}
	workers := e.workers
	if serial {
		workers = 1
	}
	ps := make([]prepared, len(txs))
	parallelFor(len(txs), workers, func(i int) { e.prepare(&ps[i], env, txs[i], sigs[i]) })
	var carried []crypto.Item
	for i := range ps {
		if c, ok := ps[i].tr.(transform.SignatureCarrier); ok && ps[i].reject == nil {
			carried = append(carried, c.CarriedSignatures()...)
		}
	}
	if len(carried) > 0 {
		crypto.PrimeCached(carried)
	}

	o := newOverlay(base, e.models)
	seen := make(map[string]struct{}, 3*len(ps))
	var keys []string
	for i := range ps {
		for _, ks := range [][]string{ps[i].reads, ps[i].writes} {
			for _, k := range ks {
				if _, dup := seen[k]; !dup {
					seen[k] = struct{}{}
					keys = append(keys, k)
				}
			}
		}
	}
	if err := o.prefetch(keys); err != nil {
		return nil, err
	}
	res := &Result{Receipts: make([]Receipt, len(txs)), post: o}
	policy, err := rbac.Load(o)
	if err != nil {
		return nil, err
	}
	writes := make([][]entry, len(txs))
	var runErr error
	var errOnce sync.Once
	run := func(i int) {
		r, ws, err := e.run(&ps[i], policy, o)
		if err != nil {
			errOnce.Do(func() { runErr = fmt.Errorf("transaction %d (%s): %w", i, ps[i].id.Short(), err) })
			return
		}
		res.Receipts[i], writes[i] = r, ws
	}
	if serial {
		for i := range ps {
			run(i)
			if runErr != nil {
				return nil, runErr
			}
			o.apply(writes[i])
			if ps[i].barrier {
				if policy, err = rbac.Load(o); err != nil {
					return nil, err
				}
			}
		}
	} else {
		for _, level := range schedule(ps) {
			parallelFor(len(level), workers, func(j int) { run(level[j]) })
			if runErr != nil {
				return nil, runErr
			}
			for _, i := range level {
				o.apply(writes[i])
			}
			if len(level) == 1 && ps[level[0]].barrier {
				if policy, err = rbac.Load(o); err != nil {
					return nil, err
				}
			}
		}
	}
	res.Changes = o.changes()
	return res, nil
}

// Admit checks what the executor would refuse t for without reading state or
// signatures: another chain, an unknown transform type, a payload that does not
// decode canonically, declared keys out of bounds, a transform that panics while
// declaring them. A node runs it before admitting a transaction, so that what it
// answers "pending" to is never rejected for its shape later; the check is the
// one Execute makes, not a copy of it.
func (e *Executor) Admit(chainID string, t *tx.Tx) error {
	var p prepared
	e.prepare(&p, Env{ChainID: chainID}, t, nil)
	return p.reject
}

// prepare decodes and authenticates what can be checked without state.
func (e *Executor) prepare(p *prepared, env Env, t *tx.Tx, sigErr error) {
	p.t = t
	id, err := t.ID()
	if err != nil {
		p.reject = err
		return
	}
	p.id = id
	defer func() {
		if r := recover(); r != nil {
			p.reject = fmt.Errorf("%w: while declaring keys: %v", ErrPanic, r)
		}
	}()
	switch {
	case sigErr != nil:
		p.reject = sigErr
		return
	case t.Body.ChainID != env.ChainID:
		p.reject = fmt.Errorf("%w: transaction is for %q, this is %q", tx.ErrWrongChain, t.Body.ChainID, env.ChainID)
		return
	}
	tr, err := e.reg.Decode(t.Body.Type, t.Body.Payload)
	if err != nil {
		p.reject = err
		return
	}
	p.tr = tr
	p.ctx = transform.Context{ChainID: env.ChainID, Height: env.Height, Time: env.Time}
	for _, s := range t.Body.Signers {
		a := s.Key.Address()
		p.ctx.Signers = append(p.ctx.Signers, a)
		p.ctx.SignerKeys = append(p.ctx.SignerKeys, s.Key)
	}
	reads, writes := tr.Keys(&p.ctx)
	for _, a := range p.ctx.Signers {
		writes = append(writes, NonceKey(a))
	}
	for _, k := range append(reads, writes...) {
		if k == "" || len(k) > MaxKeySize {
			p.reject = fmt.Errorf("%w: declared key of %d bytes (1..%d)", ErrBadKey, len(k), MaxKeySize)
			return
		}
	}
	for _, k := range writes {
		if len(k) >= len(rbac.Prefix) && k[:len(rbac.Prefix)] == rbac.Prefix {
			p.barrier = true
		}
	}
	p.reads, p.writes = reads, writes
}

// run executes one prepared transaction against the block overlay and returns its
// receipt and its writes (applied by the caller). An error is an I/O failure of the
// store, which aborts the whole block; everything else ends in the receipt.
func (e *Executor) run(p *prepared, policy *rbac.Policy, o *overlay) (rc Receipt, ws []entry, ioErr error) {
	rc.TxID = p.id
	if p.reject != nil {
		return e.receipt(rc, Rejected, p.reject), nil, nil
	}
	v := &txView{block: o, reads: p.reads, writes: p.writes}
	for i, s := range p.t.Body.Signers {
		var n uint64
		if _, err := v.Get(NonceKey(p.ctx.Signers[i]), &n); err != nil {
			return rc, nil, err
		}
		if n != s.Nonce {
			return e.receipt(rc, Rejected, fmt.Errorf("%w: signer %s has nonce %d, transaction carries %d", tx.ErrBadNonce, p.ctx.Signers[i], n, s.Nonce)), nil, nil
		}
	}
	err := e.authorize(p, policy)
	if err == nil {
		// The block's policy, reloaded after every transaction that may change it,
		// is what rbac.Load on this transaction's view would return.
		p.ctx.Policy = policy
		err = e.call(p, v)
	}
	code := OK
	if err != nil {
		code = Failed
		v.buf = v.buf[:0]
	} else if pt, ok := p.tr.(transform.Partial); ok {
		rc.Skipped = pt.Skipped()
	}
	for i, s := range p.t.Body.Signers {
		if err := v.Set(NonceKey(p.ctx.Signers[i]), s.Nonce+1); err != nil {
			return rc, nil, err
		}
	}
	return e.receipt(rc, code, err), v.buf, nil
}

func (e *Executor) authorize(p *prepared, policy *rbac.Policy) error {
	if err := policy.Allow(p.t.Body.Type, p.ctx.Signers); err != nil {
		return err
	}
	for _, a := range p.tr.Authorizations(&p.ctx) {
		if !p.ctx.Signed(a) {
			return fmt.Errorf("%w: %s must sign %q", transform.ErrUnauthorized, a, p.t.Body.Type)
		}
	}
	return nil
}

// call runs Verify then Apply, turning a panic into a failure so user code cannot
// take the node down (a panic is deterministic, so every node fails alike).
func (e *Executor) call(p *prepared, v *txView) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	if err := p.tr.Verify(&p.ctx, v); err != nil {
		return fmt.Errorf("verify %s: %w", p.t.Body.Type, err)
	}
	if err := p.tr.Apply(&p.ctx, v); err != nil {
		return fmt.Errorf("apply %s: %w", p.t.Body.Type, err)
	}
	return nil
}

func (e *Executor) receipt(rc Receipt, c Code, err error) Receipt {
	rc.Code = c
	if err != nil {
		rc.Err, rc.Error = err, err.Error()
	}
	return rc
}

// parallelFor calls fn(0..n-1) over up to workers goroutines.
func parallelFor(n, workers int, fn func(i int)) {
	if workers <= 1 || n < 2*workers {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	const chunk = 64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				start := int(next.Add(chunk)) - chunk
				if start >= n {
					return
				}
				for i := start; i < min(start+chunk, n); i++ {
					fn(i)
				}
			}
		}()
	}
	wg.Wait()
}
