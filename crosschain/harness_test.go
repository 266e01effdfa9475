package crosschain_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/header"
	"github.com/plugchain/plug/chain/mempool"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/chain/valset"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/spv"
)

// tb is what the harness needs of *testing.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	TempDir() string
	Cleanup(func())
	Logf(format string, args ...any)
}

// T0 is the harness's genesis time, Unix ms.
const T0 = int64(1_700_000_000_000)

// key derives a deterministic ed25519 key from a name.
func key(name string) crypto.PrivateKey {
	seed := sha256.Sum256([]byte("crosschain-test/" + name))
	k, err := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(seed[:]))
	if err != nil {
		panic(err)
	}
	return k
}

// Accounts shared by every chain (addresses are global).
var (
	admin   = key("admin")
	relayer = key("relayer")
	mallory = key("mallory") // a relayer that forges and replays
	alice   = key("alice")
	bob     = key("bob")
	carol   = key("carol")
	dave    = key("dave") // holds funds but no role that permits xchain/prepare
	parties = []crypto.PrivateKey{alice, bob, carol, dave}
)

func addr(k crypto.PrivateKey) crypto.Address { return k.Public().Address() }

// Assets every chain defines, and each party's genesis balance of them.
var assets = []string{"SEC", "USD"}

const funds = 1_000_000

// pending is a transaction waiting for the next block, and then its outcome.
type pending struct {
	tr     transform.Transform
	signer crypto.PrivateKey
	label  string
	done   bool
	code   exec.Code
	err    error
	errStr string
	// skipped are the parts of a batch its receipt lists as not applied.
	skipped []transform.Skip
}

// chain is one PLUG chain in the harness: a real state store, the builtin and
// crosschain transforms, blocks built with block.Build and commit certificates
// signed by its 4 validators.
type chain struct {
	t        tb
	id       string
	store    *state.Store
	ex       *exec.Executor
	reg      *transform.Registry
	ms       *transform.Models
	vals     []crypto.PrivateKey
	headers  []header.Header // by height; [0] unused
	certs    []consensus.Certificate
	nextSets []valset.Set
	time     int64
	pool     []*pending
	halted   bool
	// blocks are the committed blocks by height ([0] unused), for a driver
	// that scans them.
	blocks []*block.Block
	// mem holds transactions their senders signed themselves (the shipped
	// relay's), admitted as a node admits them; produce proposes them after
	// the pool's. raw gives each its pendings, for the outcome checks.
	mem *mempool.Pool
	raw map[hash.Hash]*rawTx
	// batch makes produce send runs of one signer's consecutive crosschain
	// steps as xchain/batch transactions, as a relay does; each step's pending
	// then gets the outcome of its step: applied, skipped (failed, with the
	// receipt's reason as an untyped error), or failed with the whole batch.
	batch bool
	// serial makes produce execute every block once more, one transaction
	// after the other, and fail unless that gives the same receipts and state
	// root: the keys the transforms declare must schedule them right.
	serial bool
}

// newChain opens a chain with its genesis committed (state version 1). extra
// registers additional transforms (a test may give one chain an unsafe one).
func newChain(t tb, id string, extra func(*transform.Registry)) *chain {
	t.Helper()
	c := &chain{t: t, id: id, reg: app.Registry(), ms: app.Models(), time: T0}
	if extra != nil {
		extra(c.reg)
	}
	c.ex = exec.New(c.reg, c.ms, exec.WithWorkers(1))
	st, err := state.Open(filepath.Join(t.TempDir(), id+".db"), state.WithNoSync(), state.WithNodeCache(10_000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c.store = st
	doc := &genesis.Doc{ChainID: id, GenesisTime: "2023-11-14T22:13:20Z"}
	for i := 0; i < 4; i++ {
		k := key(fmt.Sprintf("%s/val-%d", id, i))
		c.vals = append(c.vals, k)
		doc.Validators = append(doc.Validators, genesis.Validator{Name: fmt.Sprintf("val-%d", i), PubKey: genesis.FromPublicKey(k.Public()), Power: 100})
	}
	doc.Roles = []genesis.Role{
		{Name: "admin", Members: []string{addr(admin).String()}, Transforms: []string{
			rbac.TypeSetRole, rbac.TypeGrant, rbac.TypeRevoke, asset.TypeCreate, asset.TypeIssue, asset.TypeBurn, crosschain.TypeLCCreate,
			crosschain.TypeSetParams,
		}},
		{Name: "relayer", Members: []string{addr(relayer).String(), addr(mallory).String()}, Transforms: crosschain.RelayerTransforms},
		{Name: "trader", Members: []string{addr(alice).String(), addr(bob).String(), addr(carol).String()}, Transforms: []string{
			crosschain.TypePrepare, crosschain.TypeDecide, crosschain.TypeFinish,
		}},
		{Name: "public", Public: true, Transforms: []string{asset.TypeTransfer}},
		// dave may send batches, but none of the steps they would carry.
		{Name: "batcher", Members: []string{addr(dave).String()}, Transforms: []string{crosschain.TypeBatch}},
	}
	if extra != nil {
		doc.Roles = append(doc.Roles, genesis.Role{Name: "anyone", Public: true, Transforms: []string{"test/put"}})
	}
	for _, a := range assets {
		bal := map[string]uint64{}
		for _, p := range parties {
			bal[addr(p).String()] = funds
		}
		doc.Assets = append(doc.Assets, genesis.Asset{Name: a, Issuer: "admin", Balances: bal})
	}
	if err := doc.Validate(c.reg); err != nil {
		t.Fatal(err)
	}
	if _, err := genesis.Init(st, doc, c.ms); err != nil {
		t.Fatal(err)
	}
	c.headers = make([]header.Header, 1)
	c.certs = make([]consensus.Certificate, 1)
	c.nextSets = make([]valset.Set, 1)
	c.blocks = make([]*block.Block, 1)
	c.mem = mempool.New()
	c.raw = map[hash.Hash]*rawTx{}
	return c
}

// rawTx is a transaction in c.mem and the pendings its outcome goes to: the
// transaction's own and, for a batch, one per step.
type rawTx struct {
	p     *pending
	parts []*pending
}

// Nonce implements mempool.NonceReader over the committed state.
func (c *chain) Nonce(a crypto.Address) (uint64, error) { return c.nonce(a), nil }

// height is the last committed height (0: genesis only).
func (c *chain) height() uint64 { return uint64(len(c.headers) - 1) }

// submit queues tr signed by signer for the next block.
func (c *chain) submit(label string, tr transform.Transform, signer crypto.PrivateKey) *pending {
	p := &pending{tr: tr, signer: signer, label: label}
	c.pool = append(c.pool, p)
	return p
}

func (c *chain) nonce(a crypto.Address) uint64 {
	var n uint64
	c.get(exec.NonceKey(a), &n)
	return n
}

// get decodes the committed value of key; it reports whether the key is present.
func (c *chain) get(key string, dst any) bool {
	c.t.Helper()
	v, ok, err := c.store.Get(key)
	if err != nil {
		c.t.Fatal(err)
	}
	if !ok {
		return false
	}
	if err := encoding.UnmarshalLax(v, dst); err != nil {
		c.t.Fatalf("%s: %s: %v", c.id, key, err)
	}
	return true
}

// produce builds, certifies and commits the next block at time now (or later, if
// the chain's clock is ahead) from the pool, and fills in each pending outcome.
func (c *chain) produce(now int64) {
	c.t.Helper()
	if c.halted {
		return
	}
	if now > c.time {
		c.time = now
	}
	steps := c.pool
	c.pool = nil
	pool, parts := c.batched(steps)
	nonces := map[crypto.Address]uint64{}
	txs := make([]*tx.Tx, len(pool))
	ids := make([]hash.Hash, len(pool))
	for i, p := range pool {
		a := addr(p.signer)
		n, ok := nonces[a]
		if !ok {
			n = c.nonce(a)
		}
		x, err := tx.New(c.reg, c.id, p.tr, tx.Signer{Key: p.signer.Public(), Nonce: n})
		if err != nil {
			c.t.Fatal(err)
		}
		if err := x.Sign(p.signer); err != nil {
			c.t.Fatal(err)
		}
		if ids[i], err = x.ID(); err != nil {
			c.t.Fatal(err)
		}
		nonces[a] = n + 1
		txs[i] = x
	}
	var prev *header.Header
	if h := c.height(); h > 0 {
		prev = &c.headers[h]
	}
	own := len(txs)
	txs = append(txs, c.mem.Reap(1000, 4<<20, c)...)
	blk, out, err := block.Build(c.ex, c.store, prev, c.id, c.time, txs, nil, nil)
	if err != nil {
		c.t.Fatalf("%s: build block %d: %v", c.id, c.height()+1, err)
	}
	if c.serial {
		c.checkSerial(blk.Txs, out.Header)
	}
	if err := c.store.Commit(out.Batch); err != nil {
		c.t.Fatal(err)
	}
	byID := map[hash.Hash]exec.Receipt{}
	for _, r := range out.Receipts {
		byID[r.TxID] = r
	}
	for i, p := range pool {
		r, ok := byID[ids[i]]
		if !ok {
			c.t.Fatalf("%s: transaction %d of %d rejected (harness nonce bug?)", c.id, i, own)
		}
		p.outcome(r, parts[p])
	}
	for _, t := range blk.Txs {
		id, _ := t.ID()
		if rt := c.raw[id]; rt != nil {
			rt.p.outcome(byID[id], rt.parts)
			delete(c.raw, id)
		}
	}
	for _, r := range out.Rejected {
		// As a proposing node does: a rejected transaction leaves the pool.
		c.mem.Drop(r.TxID, "rejected by the executor: "+r.Error)
		if rt := c.raw[r.TxID]; rt != nil {
			rt.p.outcome(r, rt.parts)
			delete(c.raw, r.TxID)
		}
	}
	c.mem.Update(out.Header.Height, blk.Txs, c)
	c.blocks = append(c.blocks, blk)
	h := out.Header
	c.headers = append(c.headers, h)
	c.certs = append(c.certs, c.certify(&h, c.vals[:3]))
	c.nextSets = append(c.nextSets, out.NextValidators)
}

// checkSerial executes txs one after the other on the parent's state and
// fails unless that gives the receipts and state root of h, which the
// scheduled execution gave.
func (c *chain) checkSerial(txs []*tx.Tx, h header.Header) {
	c.t.Helper()
	res, err := c.ex.ExecuteSerial(c.store, exec.Env{ChainID: c.id, Height: h.Height, Time: h.Time}, txs, nil)
	if err != nil {
		c.t.Fatalf("%s: serial execution of block %d: %v", c.id, h.Height, err)
	}
	b, err := c.store.Stage(res.Changes)
	if err != nil {
		c.t.Fatal(err)
	}
	if res.ReceiptsRoot() != h.ReceiptsRoot || b.Root() != h.StateRoot {
		c.t.Fatalf("%s: block %d executed serially differs from its scheduled execution (declared keys wrong?)", c.id, h.Height)
	}
}

// outcome records receipt r as p's outcome and, when p is a batch, each of its
// steps' (parts) as the batch left it: applied, skipped (failed, with the
// receipt's reason as an untyped error), or failed with the whole batch. A
// receipt decoded from a block has no typed error: its text stands in.
func (p *pending) outcome(r exec.Receipt, parts []*pending) {
	if r.Err == nil && r.Code != exec.OK {
		r.Err = errors.New(r.Error)
	}
	p.done, p.code, p.err, p.errStr, p.skipped = true, r.Code, r.Err, r.Error, r.Skipped
	if parts == nil {
		return
	}
	stats.batches.Add(1)
	skipped := map[uint32]string{}
	for _, sk := range r.Skipped {
		skipped[sk.Part] = sk.Error
		stats.skipped.Add(1)
	}
	for j, q := range parts {
		q.done, q.code, q.err, q.errStr = true, r.Code, r.Err, r.Error
		if e, ok := skipped[uint32(j)]; ok && r.Code == exec.OK {
			q.code, q.err, q.errStr = exec.Failed, errors.New(e), e
		}
	}
}

// batched returns the pendings produce sends: steps as they are, or with c.batch
// runs of two or more consecutive crosschain steps of one signer replaced by an
// xchain/batch pending, whose steps' pendings parts holds.
func (c *chain) batched(steps []*pending) (pool []*pending, parts map[*pending][]*pending) {
	if !c.batch {
		return steps, nil
	}
	parts = map[*pending][]*pending{}
	for i := 0; i < len(steps); {
		j := i
		for j < len(steps) && j-i < crosschain.MaxBatchSteps && steps[j].signer == steps[i].signer {
			if st := crosschain.StepOf(steps[j].tr); !st.Valid() {
				break
			}
			j++
		}
		if j-i < 2 {
			pool = append(pool, steps[i])
			i++
			continue
		}
		b := &crosschain.Batch{}
		for _, q := range steps[i:j] {
			b.Steps = append(b.Steps, crosschain.StepOf(q.tr))
		}
		p := &pending{tr: b, signer: steps[i].signer, label: "batch"}
		parts[p] = steps[i:j]
		pool = append(pool, p)
		i = j
	}
	return pool, parts
}

// certify returns a commit certificate for h signed by keys.
func (c *chain) certify(h *header.Header, keys []crypto.PrivateKey) consensus.Certificate {
	id := h.Hash()
	cert := consensus.Certificate{ChainID: h.ChainID, Height: h.Height, BlockID: id}
	for _, k := range keys {
		v := consensus.Vote{Type: consensus.Commit, ChainID: h.ChainID, Height: h.Height, BlockID: id, Validator: addr(k)}
		sig, err := k.Sign(v.SignBytes())
		if err != nil {
			c.t.Fatal(err)
		}
		v.Signature = sig
		cert.Votes = append(cert.Votes, v)
	}
	sort.Slice(cert.Votes, func(i, j int) bool {
		return bytes.Compare(cert.Votes[i].Validator[:], cert.Votes[j].Validator[:]) < 0
	})
	return cert
}

// prove returns key's value at the chain's latest height with its state proof
// (state version = height + 1: genesis is version 1).
func (c *chain) prove(key string) crosschain.Proof {
	c.t.Helper()
	h := c.height()
	v, found, p, err := c.store.Prove(h+1, key)
	if err != nil {
		c.t.Fatal(err)
	}
	if !found {
		c.t.Fatalf("%s: prove %q: absent at height %d", c.id, key, h)
	}
	return crosschain.Proof{Height: h, Value: v, Proof: p}
}

// snapshot returns every committed key but the nonces, for "nothing changed" checks.
func (c *chain) snapshot() map[string]string {
	c.t.Helper()
	out := map[string]string{}
	err := c.store.Iterate("", func(k string, v []byte) error {
		if !strings.HasPrefix(k, "nonce/") {
			out[k] = string(v)
		}
		return nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// sameState compares two snapshots, ignoring keys under the ignore prefixes.
func sameState(a, b map[string]string, ignore ...string) error {
	skip := func(k string) bool {
		for _, p := range ignore {
			if strings.HasPrefix(k, p) {
				return true
			}
		}
		return false
	}
	for k, v := range a {
		if skip(k) {
			continue
		}
		if w, ok := b[k]; !ok || w != v {
			return fmt.Errorf("key %q changed", k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok && !skip(k) {
			return fmt.Errorf("key %q appeared", k)
		}
	}
	return nil
}

// client reads this chain's light client of src (its height, or 0 when absent).
func (c *chain) clientHeight(src string) uint64 {
	var cs spv.ClientState
	if !c.get(crosschain.LCKey(src), &cs) {
		return 0
	}
	return cs.Height
}

func (c *chain) balance(a string, k crypto.PrivateKey) uint64 {
	var n uint64
	c.get(asset.BalanceKey(a, addr(k)), &n)
	return n
}

func (c *chain) leg(id hash.Hash, i int) (crosschain.LegRecord, bool) {
	var r crosschain.LegRecord
	ok := c.get(crosschain.LegKey(id, i), &r)
	return r, ok
}

func (c *chain) decision(id hash.Hash) (crosschain.Decision, bool) {
	var d crosschain.Decision
	ok := c.get(crosschain.DecisionKey(id), &d)
	return d, ok
}

// conservation checks balances + escrows = supply for every asset of the chain and
// returns the escrow keys left.
func (c *chain) conservation() (escrows []string, err error) {
	held := map[string]uint64{}
	supply := map[string]uint64{}
	err = c.store.Iterate("", func(k string, v []byte) error {
		switch {
		case strings.HasPrefix(k, "balance/"):
			var n uint64
			if err := encoding.UnmarshalLax(v, &n); err != nil {
				return err
			}
			held[strings.SplitN(k, "/", 3)[1]] += n
		case strings.HasPrefix(k, "supply/"):
			var n uint64
			if err := encoding.UnmarshalLax(v, &n); err != nil {
				return err
			}
			supply[strings.TrimPrefix(k, "supply/")] = n
		case strings.HasPrefix(k, crosschain.EscrowPrefix):
			var e crosschain.Escrow
			if err := encoding.UnmarshalLax(v, &e); err != nil {
				return err
			}
			held[e.Asset] += e.Amount
			escrows = append(escrows, k)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for a, s := range supply {
		if held[a] != s {
			return escrows, fmt.Errorf("%s: asset %s: balances + escrow = %d, supply %d", c.id, a, held[a], s)
		}
	}
	return escrows, nil
}

// world is several chains, each holding light clients of all the others.
type world struct {
	t      tb
	chains map[string]*chain
	order  []string
	now    int64
}

// newWorld starts chains: block 1 on each, then lc/create of every other chain
// (trusting its block 1) in block 2.
func newWorld(t tb, ids ...string) *world {
	t.Helper()
	w := &world{t: t, chains: map[string]*chain{}, order: ids, now: T0}
	for _, id := range ids {
		w.chains[id] = newChain(t, id, nil)
	}
	w.start()
	return w
}

func (w *world) start() {
	w.t.Helper()
	w.step()
	var ps []*pending
	for _, dst := range w.order {
		for _, src := range w.order {
			if src != dst {
				s := w.chains[src]
				ps = append(ps, w.chains[dst].submit("lc/create", &crosschain.LCCreate{ChainID: src, Header: s.headers[1], NextSet: s.nextSets[1]}, admin))
			}
		}
	}
	w.step()
	for _, p := range ps {
		if p.code != exec.OK {
			w.t.Fatalf("lc/create: %s", p.errStr)
		}
	}
}

// step advances the clock by a second and produces a block on every live chain.
func (w *world) step() {
	w.now += 1000
	for _, id := range w.order {
		w.chains[id].produce(w.now)
	}
}

// updates returns the lc/update transforms that bring dst's client of src to src's
// latest height, from dst's committed client height.
func updates(dst, src *chain) []*crosschain.LCUpdate {
	var out []*crosschain.LCUpdate
	for h := dst.clientHeight(src.id) + 1; h <= src.height(); h++ {
		out = append(out, &crosschain.LCUpdate{ChainID: src.id, Header: src.headers[h], Cert: src.certs[h], NextSet: src.nextSets[h]})
	}
	return out
}

// relay queues on dst the updates of its client of src up to src's latest height.
func (w *world) relay(dst, src *chain) {
	for _, u := range updates(dst, src) {
		dst.submit("lc/update", u, relayer)
	}
}

// errIs reports whether p ended with an error wrapping target.
func errIs(p *pending, target error) bool { return p.done && p.err != nil && errors.Is(p.err, target) }
