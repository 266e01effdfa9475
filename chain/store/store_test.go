package store_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/store"
	"github.com/plugchain/plug/chain/tx"
)

const chainID = "store-chain"

var testKey = func() crypto.PrivateKey {
	k, err := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(make([]byte, 64)))
	if err != nil {
		panic(err)
	}
	return k
}()

// makeBlock returns block h following prev (zero for the first block), with n
// transactions (signatures are not checked by the store, so they are dummies), its
// certificate and receipts.
func makeBlock(h uint64, prev hash.Hash, n int) (*block.Block, *consensus.Certificate, []exec.Receipt) {
	b := &block.Block{Header: block.Header{ChainID: chainID, Height: h, Time: int64(h) * 1000, PrevHash: prev}}
	rs := make([]exec.Receipt, n)
	for i := 0; i < n; i++ {
		t := &tx.Tx{
			Body: tx.Body{ChainID: chainID, Type: "asset/transfer", Payload: []byte{0xa0},
				Signers: []tx.Signer{{Key: testKey.Public(), Nonce: h<<20 | uint64(i)}}},
			Proofs: []tx.Proof{{Signature: bytes.Repeat([]byte{byte(i)}, 64)}},
		}
		b.Txs = append(b.Txs, t)
		id, _ := t.ID()
		rs[i] = exec.Receipt{TxID: id, Code: exec.Code(i % 2)}
		if i%2 == 1 {
			rs[i].Error = "insufficient funds"
		}
	}
	b.Header.TxRoot, _ = block.TxRoot(b.Txs)
	id := b.Header.Hash()
	cert := &consensus.Certificate{ChainID: chainID, Height: h, Round: 1, BlockID: id,
		Votes: []consensus.Vote{{Type: consensus.Commit, ChainID: chainID, Height: h, Round: 1, BlockID: id, Signature: []byte("sig")}}}
	return b, cert, rs
}

func open(t testing.TB, path string, opts ...store.Option) *store.Store {
	t.Helper()
	s, err := store.Open(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkBlock reads everything of height h back and compares it with what was saved.
func checkBlock(t testing.TB, s *store.Store, h uint64) {
	t.Helper()
	var prev hash.Hash
	if h > 1 {
		hd, err := s.Header(h - 1)
		if err != nil {
			t.Fatal(err)
		}
		prev = hd.Hash()
	}
	wantB, wantC, wantR := makeBlock(h, prev, int(h%5))
	b, err := s.Block(h)
	if err != nil {
		t.Fatalf("block %d: %v", h, err)
	}
	// Compared by encoding: a loaded block's transactions keep their bytes
	// (block.Decode), the freshly built ones do not.
	if got, want := encoding.MustMarshal(b), encoding.MustMarshal(wantB); !bytes.Equal(got, want) {
		t.Fatalf("block %d differs", h)
	}
	hd, err := s.Header(h)
	if err != nil || hd.Hash() != wantB.Header.Hash() {
		t.Fatalf("header %d: %v", h, err)
	}
	c, err := s.Certificate(h)
	if err != nil || !reflect.DeepEqual(c, wantC) {
		t.Fatalf("certificate %d: %v", h, err)
	}
	rs, err := s.Receipts(h)
	if err != nil || len(rs) != len(wantR) {
		t.Fatalf("receipts %d: %v", h, err)
	}
	for i := range rs {
		if !reflect.DeepEqual(rs[i], wantR[i]) {
			t.Fatalf("receipt %d/%d: %+v, want %+v", h, i, rs[i], wantR[i])
		}
		gh, gi, err := s.TxLocation(rs[i].TxID)
		if err != nil || gh != h || gi != i {
			t.Fatalf("tx location: %d %d %v, want %d %d", gh, gi, err, h, i)
		}
	}
	id := wantB.Header.Hash()
	if got, err := s.HeightOf(id); err != nil || got != h {
		t.Fatalf("height of %s: %d %v", id.Short(), got, err)
	}
	if got, err := s.HashAt(h); err != nil || got != id {
		t.Fatalf("hash at %d: %v", h, err)
	}
	raw, err := s.BlockBytes(h)
	if enc, _ := wantB.Encode(); err != nil || !bytes.Equal(raw, enc) {
		t.Fatalf("block bytes %d: %v", h, err)
	}
	if _, err := block.Decode(raw); err != nil {
		t.Fatalf("stored block does not decode strictly: %v", err)
	}
}

func saveVaried(t testing.TB, s *store.Store, to uint64) {
	for h := s.Height() + 1; h <= to; h++ {
		var prev hash.Hash
		if h > 1 {
			prev, _ = s.HashAt(h - 1)
		}
		b, c, rs := makeBlock(h, prev, int(h%5))
		if err := s.SaveBlock(b, c, rs); err != nil {
			t.Fatalf("save %d: %v", h, err)
		}
	}
}

func TestRoundTripAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chain.db")
	s := open(t, path)
	if s.Height() != 0 {
		t.Fatalf("fresh store at height %d", s.Height())
	}
	if st, err := s.LoadConsensus(); st != nil || err != nil {
		t.Fatalf("fresh consensus state: %v %v", st, err)
	}
	if _, _, err := s.Genesis(); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("fresh genesis: %v", err)
	}
	gh := hash.Sum(hash.DomainGenesis, []byte("doc"))
	if err := s.SaveGenesis([]byte("doc"), gh); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveGenesis([]byte("doc"), gh); err != nil {
		t.Fatalf("same genesis again: %v", err)
	}
	if err := s.SaveGenesis([]byte("other"), hash.Sum(hash.DomainGenesis, []byte("other"))); !errors.Is(err, store.ErrMismatch) {
		t.Fatalf("other genesis: %v", err)
	}
	saveVaried(t, s, 12)
	st := sampleState()
	if err := s.SaveConsensus(st); err != nil {
		t.Fatal(err)
	}
	check := func(s *store.Store) {
		t.Helper()
		if s.Height() != 12 {
			t.Fatalf("height %d", s.Height())
		}
		for h := uint64(1); h <= 12; h++ {
			checkBlock(t, s, h)
		}
		doc, h, err := s.Genesis()
		if err != nil || string(doc) != "doc" || h != gh {
			t.Fatalf("genesis: %q %v", doc, err)
		}
		got, err := s.LoadConsensus()
		if err != nil || !reflect.DeepEqual(got, st) {
			t.Fatalf("consensus state: %v\n got %+v\nwant %+v", err, got, st)
		}
		for _, f := range []func() error{
			func() error { _, err := s.Block(13); return err },
			func() error { _, err := s.Header(0); return err },
			func() error { _, err := s.Certificate(13); return err },
			func() error { _, err := s.Receipts(13); return err },
			func() error { _, _, err := s.TxLocation(hash.Hash{1}); return err },
			func() error { _, err := s.HeightOf(hash.Hash{1}); return err },
		} {
			if err := f(); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("missing record: %v", err)
			}
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	check(s)
	saveVaried(t, s, 14)
	checkBlock(t, s, 14)
}

func sampleState() *consensus.State {
	blk := bytes.Repeat([]byte("block"), 1000)
	other := bytes.Repeat([]byte("other"), 500)
	return &consensus.State{
		Height: 13, Round: 2, Step: consensus.StepCommit,
		LockedRound: 1, LockedID: hash.Hash{1}, LockedBlock: blk,
		ValidRound: 2, ValidID: hash.Hash{2}, ValidBlock: other,
		Votes: []consensus.Vote{{Type: consensus.PreCommit, ChainID: chainID, Height: 13, Round: 2, BlockID: hash.Hash{2}, Signature: []byte("s")}},
		Proposals: []consensus.Proposal{
			{ChainID: chainID, Height: 13, Round: 0, POLRound: -1, BlockID: hash.Hash{1}, Block: blk, Signature: []byte("p0")},
			{ChainID: chainID, Height: 13, Round: 2, POLRound: -1, BlockID: hash.Hash{3}, Signature: []byte("p2")},
		},
	}
}

func TestConsensusStateOverwrite(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "chain.db"))
	defer s.Close()
	if err := s.SaveConsensus(sampleState()); err != nil {
		t.Fatal(err)
	}
	// The next height: no lock, no blocks; the old blobs go.
	next := &consensus.State{Height: 14, Step: consensus.StepPropose, LockedRound: -1, ValidRound: -1}
	if err := s.SaveConsensus(next); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadConsensus()
	if err != nil || !reflect.DeepEqual(got, next) {
		t.Fatalf("got %+v, %v", got, err)
	}
	if err := s.SaveConsensus(sampleState()); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LoadConsensus(); err != nil || !reflect.DeepEqual(got, sampleState()) {
		t.Fatalf("after re-save: %v", err)
	}
}

func TestRefusals(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "chain.db"))
	defer s.Close()
	b1, c1, r1 := makeBlock(1, hash.Hash{}, 2)

	b2, c2, r2 := makeBlock(2, hash.Hash{}, 1)
	if err := s.SaveBlock(b2, c2, r2); !errors.Is(err, store.ErrHeight) {
		t.Fatalf("height 2 first: %v", err)
	}
	_, cOther, _ := makeBlock(1, hash.Hash{9}, 2)
	if err := s.SaveBlock(b1, cOther, r1); !errors.Is(err, store.ErrMismatch) {
		t.Fatalf("certificate of another block: %v", err)
	}
	if err := s.SaveBlock(b1, nil, r1); !errors.Is(err, store.ErrMismatch) {
		t.Fatalf("no certificate: %v", err)
	}
	if err := s.SaveBlock(b1, c1, r1[:1]); !errors.Is(err, store.ErrMismatch) {
		t.Fatalf("missing receipt: %v", err)
	}
	if s.Height() != 0 {
		t.Fatalf("refused block moved height to %d", s.Height())
	}
	if err := s.SaveBlock(b1, c1, r1); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveBlock(b1, c1, r1); !errors.Is(err, store.ErrHeight) {
		t.Fatalf("same height twice: %v", err)
	}
	// Block 2 must follow block 1's header.
	if err := s.SaveBlock(b2, c2, r2); !errors.Is(err, store.ErrMismatch) {
		t.Fatalf("block not following its parent: %v", err)
	}
	if _, err := s.Block(2); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused block stored: %v", err)
	}
	if err := s.SaveConsensus(nil); err == nil {
		t.Fatal("nil consensus state saved")
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chain.db")
	s := open(t, path)
	defer s.Close()
	if _, err := store.Open(path, store.WithOpenTimeout(50_000_000)); err == nil {
		t.Fatal("opened a store another handle holds")
	}
}

func BenchmarkSaveConsensus(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "chain.db"))
	defer s.Close()
	st := sampleState()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st.Round = uint32(i)
		st.Votes = append(st.Votes[:0], consensus.Vote{Type: consensus.PreCommit, ChainID: chainID, Height: 13, Round: uint32(i), Signature: make([]byte, 64)})
		if err := s.SaveConsensus(st); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSaveBlock(b *testing.B) {
	const n = 10_000
	s := open(b, filepath.Join(b.TempDir(), "chain.db"))
	defer s.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		h := s.Height() + 1
		var prev hash.Hash
		if h > 1 {
			prev, _ = s.HashAt(h - 1)
		}
		blk, c, rs := makeBlock(h, prev, n)
		b.StartTimer()
		if err := s.SaveBlock(blk, c, rs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tx/s")
}
