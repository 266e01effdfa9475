package mempool_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/builtin"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/mempool"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
)

const chainID = "pool-chain"

// memState is a committed state in a map; it serves the executor and the pool.
type memState struct {
	mu sync.RWMutex
	m  map[string][]byte
}

func (s *memState) Get(key string) ([]byte, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.m[key]
	return v, ok, nil
}

func (s *memState) set(t testing.TB, key string, v any) {
	b, err := encoding.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.m[key] = b
	s.mu.Unlock()
}

func (s *memState) apply(cs []state.Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cs {
		if c.Delete {
			delete(s.m, c.Key)
		} else {
			s.m[c.Key] = c.Value
		}
	}
}

// Nonce implements mempool.NonceReader.
func (s *memState) Nonce(a crypto.Address) (uint64, error) {
	var n uint64
	if b, ok, _ := s.Get(exec.NonceKey(a)); ok {
		if err := encoding.UnmarshalLax(b, &n); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// nonceMap is a NonceReader for tests that need no state.
type nonceMap map[crypto.Address]uint64

func (m nonceMap) Nonce(a crypto.Address) (uint64, error) { return m[a], nil }

type world struct {
	keys  []crypto.PrivateKey
	addrs []crypto.Address
	st    *memState
	reg   *transform.Registry
}

func newWorld(t testing.TB, n int, seed uint64) *world {
	w := &world{st: &memState{m: map[string][]byte{}}, reg: builtin.Registry()}
	r := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < n; i++ {
		var s [32]byte
		binary.LittleEndian.PutUint64(s[:], r.Uint64())
		binary.LittleEndian.PutUint64(s[8:], uint64(i))
		k, err := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(s[:]))
		if err != nil {
			t.Fatal(err)
		}
		w.keys = append(w.keys, k)
		w.addrs = append(w.addrs, k.Public().Address())
	}
	w.st.set(t, rbac.RolesKey, []string{"public"})
	w.st.set(t, rbac.RoleKey("public"), rbac.Role{Public: true, Transforms: []string{asset.TypeTransfer}})
	w.st.set(t, asset.DefKey("USD"), asset.Definition{Issuer: "public", Decimals: 2})
	for _, a := range w.addrs {
		w.st.set(t, asset.BalanceKey("USD", a), uint64(1_000_000))
	}
	w.st.set(t, asset.SupplyKey("USD"), uint64(1_000_000)*uint64(n))
	return w
}

// transfer returns a transfer from account from, signed by from and then by the
// accounts in co, with the given nonces (one per signer).
func (w *world) transfer(t testing.TB, from, to int, amount uint64, nonces []uint64, co ...int) *tx.Tx {
	idx := append([]int{from}, co...)
	var signers []tx.Signer
	for i, k := range idx {
		signers = append(signers, tx.Signer{Key: w.keys[k].Public(), Nonce: nonces[i]})
	}
	x, err := tx.New(w.reg, chainID, &asset.Transfer{Asset: "USD", From: w.addrs[from], To: w.addrs[to], Amount: amount}, signers...)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range idx {
		if err := x.Sign(w.keys[k]); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

func mustAdd(t testing.TB, p *mempool.Pool, x *tx.Tx, nr mempool.NonceReader) hash.Hash {
	t.Helper()
	id, err := p.Add(x, nil, nr)
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	return id
}

func TestAddErrors(t *testing.T) {
	w := newWorld(t, 3, 1)
	nr := nonceMap{w.addrs[0]: 5}
	p := mempool.New(mempool.MaxPerSender(10), mempool.ChainID(chainID))

	a := w.transfer(t, 0, 1, 1, []uint64{5})
	id := mustAdd(t, p, a, nr)
	if want, _ := a.ID(); id != want || !p.Has(id) || p.Get(id) != a || p.Len() != 1 {
		t.Fatalf("after add: id %s, has %v, len %d", id.Short(), p.Has(id), p.Len())
	}
	enc, _ := a.Encode()
	if p.Bytes() != len(enc) {
		t.Fatalf("bytes %d, want %d", p.Bytes(), len(enc))
	}
	check := func(name string, x *tx.Tx, sigErr error, want error) {
		t.Helper()
		if _, err := p.Add(x, sigErr, nr); !errors.Is(err, want) {
			t.Errorf("%s: got %v, want %v", name, err, want)
		}
	}
	check("same tx", a, nil, mempool.ErrDuplicate)
	check("same sender and nonce", w.transfer(t, 0, 2, 7, []uint64{5}), nil, mempool.ErrDuplicate)
	check("replay", w.transfer(t, 0, 1, 1, []uint64{4}), nil, mempool.ErrStaleNonce)
	check("gap", w.transfer(t, 0, 1, 1, []uint64{15}), nil, mempool.ErrNonceGap)
	check("co-signer stale", w.transfer(t, 1, 0, 1, []uint64{0, 3}, 0), nil, mempool.ErrStaleNonce)
	check("co-signer taken", w.transfer(t, 1, 0, 1, []uint64{0, 5}, 0), nil, mempool.ErrDuplicate)
	check("bad signature", w.transfer(t, 1, 0, 1, []uint64{0}), tx.ErrBadProof, tx.ErrBadProof)
	check("bad signature is ErrBadTx", w.transfer(t, 1, 0, 1, []uint64{0}), tx.ErrBadProof, mempool.ErrBadTx)
	noProof := w.transfer(t, 1, 0, 1, []uint64{0})
	noProof.Proofs = nil
	check("shape", noProof, nil, tx.ErrMalformed)
	other := w.transfer(t, 1, 0, 1, []uint64{0})
	other.Body.ChainID = "other"
	check("other chain", other, nil, tx.ErrWrongChain)
	big := w.transfer(t, 1, 0, 1, []uint64{0})
	big.Body.Memo = string(make([]byte, tx.MaxTxSize))
	check("too large", big, nil, mempool.ErrTooLarge)
	if p.Len() != 1 {
		t.Fatalf("refused transactions were kept: len %d", p.Len())
	}
	// The window: nonces 5..14 fit, 15 does not.
	mustAdd(t, p, w.transfer(t, 0, 1, 1, []uint64{14}), nr)
}

func TestFullAndRecovery(t *testing.T) {
	w := newWorld(t, 4, 2)
	nr := nonceMap{}
	p := mempool.New(mempool.MaxTxs(6))
	var txs []*tx.Tx
	for n := uint64(0); n < 3; n++ {
		for s := 0; s < 2; s++ {
			x := w.transfer(t, s, 3, 1, []uint64{n})
			mustAdd(t, p, x, nr)
			txs = append(txs, x)
		}
	}
	for i := 0; i < 3; i++ {
		if _, err := p.Add(w.transfer(t, 2, 3, 1, []uint64{uint64(i)}), nil, nr); !errors.Is(err, mempool.ErrFull) {
			t.Fatalf("add to a full pool: %v", err)
		}
	}
	if p.Len() != 6 {
		t.Fatalf("full pool grew to %d", p.Len())
	}
	// A block commits the first two nonces of both senders.
	nr[w.addrs[0]], nr[w.addrs[1]] = 2, 2
	p.Update(1, txs[:4], nr)
	if p.Len() != 2 {
		t.Fatalf("after update: len %d, want 2", p.Len())
	}
	mustAdd(t, p, w.transfer(t, 2, 3, 1, []uint64{0}), nr)

	// The byte bound.
	enc, _ := txs[0].Encode()
	q := mempool.New(mempool.MaxBytes(2*len(enc) + len(enc)/2))
	mustAdd(t, q, txs[0], nonceMap{})
	mustAdd(t, q, txs[1], nonceMap{})
	if _, err := q.Add(txs[2], nil, nonceMap{}); !errors.Is(err, mempool.ErrFull) {
		t.Fatalf("byte bound: %v", err)
	}
	q.Remove(mustID(t, txs[0]))
	mustAdd(t, q, txs[2], nonceMap{})
}

func mustID(t testing.TB, x *tx.Tx) hash.Hash {
	id, err := x.ID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestUpdateDropsStale(t *testing.T) {
	w := newWorld(t, 3, 3)
	nr := nonceMap{}
	p := mempool.New()
	var mine []*tx.Tx
	for n := uint64(0); n < 5; n++ {
		x := w.transfer(t, 0, 1, 1, []uint64{n})
		mustAdd(t, p, x, nr)
		mine = append(mine, x)
	}
	// A multi-signer transaction that uses account 0's nonce 7.
	multi := w.transfer(t, 1, 2, 1, []uint64{0, 7}, 0)
	mustAdd(t, p, multi, nr)
	other := w.transfer(t, 2, 1, 1, []uint64{0})
	mustAdd(t, p, other, nr)

	// Another node's block consumed account 0's nonces 0..7 with transactions this
	// pool never saw: everything of account 0 below 8 is stale, multi included.
	foreign := w.transfer(t, 0, 2, 99, []uint64{7})
	nr[w.addrs[0]] = 8
	p.Update(1, []*tx.Tx{foreign}, nr)
	for _, x := range append(mine, multi) {
		if p.Has(mustID(t, x)) {
			t.Fatalf("stale transaction kept")
		}
	}
	if !p.Has(mustID(t, other)) || p.Len() != 1 {
		t.Fatalf("unrelated transaction dropped (len %d)", p.Len())
	}
	if got := p.Reap(0, 0, nr); len(got) != 1 {
		t.Fatalf("reap %d", len(got))
	}
}

func TestReapOrderWaitsForGaps(t *testing.T) {
	w := newWorld(t, 3, 4)
	nr := nonceMap{w.addrs[0]: 10}
	p := mempool.New()
	// Account 0: nonces 12, 11, 10 arrive in reverse; 14 waits for 13.
	for _, n := range []uint64{12, 11, 14, 10} {
		mustAdd(t, p, w.transfer(t, 0, 1, 1, []uint64{n}), nr)
	}
	// Account 1: nonce 1 only; its nonce 0 is missing, so nothing of it is ready.
	mustAdd(t, p, w.transfer(t, 1, 0, 1, []uint64{1}), nr)
	// Account 2 with account 0 as co-signer at nonce 13: ready after 0's 12.
	mustAdd(t, p, w.transfer(t, 2, 0, 1, []uint64{0, 13}, 0), nr)

	got := p.Reap(0, 0, nr)
	var seen []string
	for _, x := range got {
		var s string
		for _, sg := range x.Body.Signers {
			s += fmt.Sprintf("%d@%d ", indexOf(w, sg.Key.Address()), sg.Nonce)
		}
		seen = append(seen, s)
	}
	want := []string{"0@10 ", "0@11 ", "0@12 ", "2@0 0@13 ", "0@14 "}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("reap order %v, want %v", seen, want)
	}
	if got := p.Reap(2, 0, nr); len(got) != 2 {
		t.Fatalf("reap limit: %d", len(got))
	}
	enc, _ := got[0].Encode()
	if got := p.Reap(0, len(enc)*3/2, nr); len(got) != 1 {
		t.Fatalf("byte limit: %d", len(got))
	}
}

func indexOf(w *world, a crypto.Address) int {
	for i, b := range w.addrs {
		if a == b {
			return i
		}
	}
	return -1
}

// TestReapExecutes feeds random pools to the real executor: everything reaped must
// apply, and after Update the pool reaps the rest.
func TestReapExecutes(t *testing.T) {
	const accounts = 12
	w := newWorld(t, accounts, 5)
	ex := builtin.Executor()
	rng := rand.New(rand.NewPCG(5, 5))
	p := mempool.New(mempool.MaxPerSender(50))
	next := make([]uint64, accounts) // next nonce to hand out per account
	var all []*tx.Tx
	for i := 0; i < 600; i++ {
		from := rng.IntN(accounts)
		to := (from + 1 + rng.IntN(accounts-1)) % accounts
		var x *tx.Tx
		if rng.IntN(6) == 0 {
			co := (from + 1 + rng.IntN(accounts-1)) % accounts
			x = w.transfer(t, from, to, 1+rng.Uint64N(10), []uint64{next[from], next[co]}, co)
			next[co]++
		} else {
			x = w.transfer(t, from, to, 1+rng.Uint64N(10), []uint64{next[from]})
		}
		next[from]++
		all = append(all, x)
	}
	// Arrival order is shuffled, so gaps fill in late; some arrive only after the
	// first blocks are built.
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	verdicts := tx.VerifyProofs(all)
	sigOf := map[*tx.Tx]error{}
	for i, x := range all {
		sigOf[x] = verdicts[i]
	}
	pending := all
	addSome := func(n int) {
		for len(pending) > 0 && n > 0 {
			x := pending[0]
			pending = pending[1:]
			n--
			if _, err := p.Add(x, sigOf[x], w.st); err != nil {
				if errors.Is(err, mempool.ErrNonceGap) {
					pending = append(pending, x) // retry once the window moves
					continue
				}
				t.Fatalf("add: %v", err)
			}
		}
	}
	addSome(300)
	committed := 0
	for height := uint64(1); committed < len(all); height++ {
		if height > 200 {
			t.Fatalf("stuck: %d of %d committed, %d pending in pool", committed, len(all), p.Len())
		}
		batch := p.Reap(40, 0, w.st)
		res, err := ex.Execute(w.st, exec.Env{ChainID: chainID, Height: height, Time: int64(height)}, batch, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res.Receipts {
			if r.Code != exec.OK {
				t.Fatalf("height %d: reaped transaction %d: %v %s", height, i, r.Code, r.Error)
			}
		}
		w.st.apply(res.Changes)
		p.Update(height, batch, w.st)
		committed += len(batch)
		addSome(30)
	}
	if p.Len() != 0 || p.Bytes() != 0 {
		t.Fatalf("pool holds %d transactions (%d bytes) after all committed", p.Len(), p.Bytes())
	}
}

func TestConcurrent(t *testing.T) {
	w := newWorld(t, 8, 6)
	nr := &memState{m: map[string][]byte{}}
	var txs [8][]*tx.Tx
	for s := range txs {
		for n := uint64(0); n < 60; n++ {
			txs[s] = append(txs[s], w.transfer(t, s, (s+1)%8, 1, []uint64{n}))
		}
	}
	p := mempool.New(mempool.MaxTxs(300))
	var wg sync.WaitGroup
	for s := range txs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, x := range txs[s] {
				if _, err := p.Add(x, nil, nr); err != nil && !errors.Is(err, mempool.ErrFull) && !errors.Is(err, mempool.ErrStaleNonce) {
					t.Error(err)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 50; i++ {
			got := p.Reap(20, 0, nr)
			// Commit them: advance the nonces, then update.
			for _, x := range got {
				s := x.Body.Signers[0]
				nr.set(t, exec.NonceKey(s.Key.Address()), s.Nonce+1)
			}
			p.Update(1, got, nr)
			_ = p.Len() + p.Bytes()
		}
	}()
	wg.Wait()
	// Whatever is left reaps in nonce order per sender.
	last := map[crypto.Address]uint64{}
	for _, x := range p.Reap(0, 0, nr) {
		s := x.Body.Signers[0]
		a := s.Key.Address()
		want, _ := nr.Nonce(a)
		if l, ok := last[a]; ok {
			want = l + 1
		}
		if s.Nonce != want {
			t.Fatalf("sender %s: nonce %d reaped, want %d", a, s.Nonce, want)
		}
		last[a] = s.Nonce
	}
}

// BenchmarkMempoolAddReap adds 10,000 transactions of 1,000 senders (arriving out
// of nonce order), reaps them all and updates, per iteration.
func BenchmarkMempoolAddReap(b *testing.B) {
	const senders, perSender = 1000, 10
	w := newWorld(b, senders, 7)
	var txs []*tx.Tx
	for n := uint64(0); n < perSender; n++ {
		for s := 0; s < senders; s++ {
			x, err := tx.New(w.reg, chainID, &asset.Transfer{Asset: "USD", From: w.addrs[s], To: w.addrs[(s+1)%senders], Amount: 1},
				tx.Signer{Key: w.keys[s].Public(), Nonce: perSender - 1 - n})
			if err != nil {
				b.Fatal(err)
			}
			x.Proofs = []tx.Proof{{Signature: make([]byte, 64)}} // verdicts are passed in
			txs = append(txs, x)
		}
	}
	nr := nonceMap{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := mempool.New()
		for _, x := range txs {
			if _, err := p.Add(x, nil, nr); err != nil {
				b.Fatal(err)
			}
		}
		got := p.Reap(0, 0, nr)
		if len(got) != len(txs) {
			b.Fatalf("reaped %d of %d", len(got), len(txs))
		}
		p.Update(1, got, nonceMap{})
	}
	b.ReportMetric(float64(len(txs)*b.N)/b.Elapsed().Seconds(), "tx/s")
}

// BenchmarkReapFull reaps a full pool (50,000 transactions of 500 senders).
func BenchmarkReapFull(b *testing.B) {
	const senders, perSender = 500, 100
	w := newWorld(b, senders, 8)
	p := mempool.New()
	nr := nonceMap{}
	for n := uint64(0); n < perSender; n++ {
		for s := 0; s < senders; s++ {
			x, err := tx.New(w.reg, chainID, &asset.Transfer{Asset: "USD", From: w.addrs[s], To: w.addrs[(s+1)%senders], Amount: 1},
				tx.Signer{Key: w.keys[s].Public(), Nonce: n})
			if err != nil {
				b.Fatal(err)
			}
			x.Proofs = []tx.Proof{{Signature: make([]byte, 64)}}
			if _, err := p.Add(x, nil, nr); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if got := p.Reap(0, 0, nr); len(got) != senders*perSender {
			b.Fatalf("reaped %d", len(got))
		}
	}
}

// TestConflictLoserIsDropped: two nodes admitted different transactions with one
// (signer, nonce) before gossip met. On each node the one that arrived second
// was refused and is watched; once a block commits the winner, both nodes report
// the loser dropped, naming the winner and its height, and the winner is no
// longer pending anywhere.
func TestConflictLoserIsDropped(t *testing.T) {
	w := newWorld(t, 3, 7)
	nrA, nrB := nonceMap{}, nonceMap{}
	a, b := mempool.New(), mempool.New()
	x := w.transfer(t, 0, 1, 5, []uint64{0})
	y := w.transfer(t, 0, 2, 9, []uint64{0})
	mustAdd(t, a, x, nrA)
	mustAdd(t, b, y, nrB)
	// Gossip crosses: each node refuses the other's transaction.
	if _, err := a.Add(y, nil, nrA); !errors.Is(err, mempool.ErrDuplicate) || !strings.Contains(err.Error(), mustID(t, x).String()) {
		t.Fatalf("node a admitting y: %v, want ErrDuplicate naming x", err)
	}
	if _, err := b.Add(x, nil, nrB); !errors.Is(err, mempool.ErrDuplicate) {
		t.Fatalf("node b admitting x: %v", err)
	}
	if st, _ := a.Lookup(mustID(t, y)); st != mempool.Unknown {
		t.Fatalf("before the block, the refused y is %v on a, want unknown", st)
	}
	// Block 7 commits x.
	nrA[w.addrs[0]], nrB[w.addrs[0]] = 1, 1
	a.Update(7, []*tx.Tx{x}, nrA)
	b.Update(7, []*tx.Tx{x}, nrB)
	for name, p := range map[string]*mempool.Pool{"a": a, "b": b} {
		st, d := p.Lookup(mustID(t, y))
		if st != mempool.Dropped || d.By != mustID(t, x) || d.Height != 7 || d.Nonce != 0 || d.Signer != w.addrs[0] {
			t.Fatalf("node %s: y is %v %+v, want dropped by x at 7", name, st, d)
		}
		if !strings.Contains(d.String(), "nonce 0 of signer "+w.addrs[0].String()+" was used by transaction "+mustID(t, x).String()+" committed at height 7") {
			t.Fatalf("node %s: reason %q", name, d.String())
		}
		if st, _ := p.Lookup(mustID(t, x)); st != mempool.Unknown {
			t.Fatalf("node %s: committed x is %v, want unknown to the pool", name, st)
		}
		if p.Len() != 0 {
			t.Fatalf("node %s: %d pending", name, p.Len())
		}
	}
}

// TestNextCountsPending: the next nonce skips the signer's pending transactions
// up to the first gap.
func TestNextCountsPending(t *testing.T) {
	w := newWorld(t, 2, 8)
	nr := nonceMap{w.addrs[0]: 3}
	p := mempool.New()
	for _, n := range []uint64{3, 4, 5, 7} {
		mustAdd(t, p, w.transfer(t, 0, 1, 1, []uint64{n}), nr)
	}
	if next, pending := p.Next(w.addrs[0], 3); next != 6 || pending != 4 {
		t.Fatalf("next %d pending %d, want 6 and 4", next, pending)
	}
	if next, pending := p.Next(w.addrs[1], 0); next != 0 || pending != 0 {
		t.Fatalf("idle signer: next %d pending %d", next, pending)
	}
	_, err := p.Add(w.transfer(t, 0, 1, 2, []uint64{4}), nil, nr)
	if !errors.Is(err, mempool.ErrDuplicate) || !strings.Contains(err.Error(), "use nonce 6") {
		t.Fatalf("second transaction at a pending nonce: %v, want ErrDuplicate suggesting nonce 6", err)
	}
}

// TestDropAndRetention: a transaction the proposer drops is reported with its
// reason; the log keeps only the last MaxDropped.
func TestDropAndRetention(t *testing.T) {
	w := newWorld(t, 2, 9)
	p := mempool.New(mempool.MaxDropped(2))
	var ids []hash.Hash
	for n := uint64(0); n < 3; n++ {
		x := w.transfer(t, 0, 1, 1, []uint64{n})
		ids = append(ids, mustAdd(t, p, x, nonceMap{}))
	}
	for i, id := range ids {
		p.Drop(id, fmt.Sprintf("rejected %d", i))
	}
	if st, _ := p.Lookup(ids[0]); st != mempool.Unknown {
		t.Fatalf("oldest drop kept past the retention: %v", st)
	}
	if st, d := p.Lookup(ids[2]); st != mempool.Dropped || d.String() != "rejected 2" {
		t.Fatalf("latest drop: %v %q", st, d.String())
	}
	if p.Len() != 0 {
		t.Fatalf("dropped transactions still pending: %d", p.Len())
	}
}
