package spv_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/header"
	"github.com/plugchain/plug/chain/proof"
	"github.com/plugchain/plug/chain/valset"
	"github.com/plugchain/plug/spv"
)

// A test chain: real ed25519 keys, real headers chained by hash and validator-set
// hashes, real certificates of signed commit votes. Everything is deterministic.

const testChainID = "plug-spv-test"

var testKeys = func() []crypto.PrivateKey {
	ks := make([]crypto.PrivateKey, 8)
	for i := range ks {
		var seed [32]byte
		copy(seed[:], "spv test validator key")
		seed[31] = byte(i)
		k, err := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(seed[:]))
		if err != nil {
			panic(err)
		}
		ks[i] = k
	}
	return ks
}()

func addr(i int) crypto.Address { return testKeys[i].Public().Address() }

// member is a validator of the schedule: a key index and its power.
type member struct {
	key   int
	power uint64
}

// defaultSchedule is the set that signs height h: validators 0-3 with power 10 up to
// height 5; validator 3 leaves (the set of 6-8 is 0-2); from height 9 validator 4
// joins with power 20 and validator 0 drops to 5.
func defaultSchedule(h uint64) []member {
	switch {
	case h <= 5:
		return []member{{0, 10}, {1, 10}, {2, 10}, {3, 10}}
	case h <= 8:
		return []member{{0, 10}, {1, 10}, {2, 10}}
	default:
		return []member{{0, 5}, {1, 10}, {2, 10}, {4, 20}}
	}
}

type testChain struct {
	id        string
	sched     func(uint64) []member
	stateRoot func(uint64) hash.Hash
	headers   []header.Header // by height; [0] unused
	certs     []consensus.Certificate
}

func (tc *testChain) set(h uint64) valset.Set {
	var s valset.Set
	for _, m := range tc.sched(h) {
		k := testKeys[m.key]
		s = append(s, valset.Validator{Address: k.Public().Address(), PubKey: k.Public(), Power: m.power})
	}
	s.Sort()
	return s
}

func (tc *testChain) signers(h uint64) []int {
	var ix []int
	for _, m := range tc.sched(h) {
		ix = append(ix, m.key)
	}
	return ix
}

func testItems(tag string, h uint64, n int) []hash.Hash {
	out := make([]hash.Hash, n)
	for i := range out {
		var b [16]byte
		binary.BigEndian.PutUint64(b[:], h)
		binary.BigEndian.PutUint64(b[8:], uint64(i))
		out[i] = hash.Sum("test/"+tag, b[:])
	}
	return out
}

func testTime(h uint64) int64 { return 1_700_000_000_000 + int64(h)*1000 }

// newTestChain builds headers 1..n with certificates by the whole set of each height.
func newTestChain(n int, sched func(uint64) []member, stateRoot func(uint64) hash.Hash) *testChain {
	if sched == nil {
		sched = defaultSchedule
	}
	if stateRoot == nil {
		stateRoot = func(h uint64) hash.Hash { return testItems("state", h, 1)[0] }
	}
	tc := &testChain{id: testChainID, sched: sched, stateRoot: stateRoot,
		headers: make([]header.Header, n+1), certs: make([]consensus.Certificate, n+1)}
	for h := uint64(1); h <= uint64(n); h++ {
		hdr := header.Header{
			ChainID: tc.id, Height: h, Time: testTime(h),
			TxRoot:             proof.ListRoot(testItems("tx", h, 5)),
			ReceiptsRoot:       proof.ListRoot(testItems("receipt", h, 5)),
			StateRoot:          stateRoot(h),
			ValidatorsHash:     tc.set(h).Hash(),
			NextValidatorsHash: tc.set(h + 1).Hash(),
			Proposer:           addr(tc.sched(h)[0].key),
		}
		if h > 1 {
			hdr.PrevHash = tc.headers[h-1].Hash()
		}
		tc.headers[h] = hdr
		tc.certs[h] = tc.sign(hdr, 0, tc.signers(h)...)
	}
	return tc
}

// sign returns a certificate of hdr by the given validators' commit votes.
func (tc *testChain) sign(hdr header.Header, round uint32, keys ...int) consensus.Certificate {
	id := hdr.Hash()
	c := consensus.Certificate{ChainID: hdr.ChainID, Height: hdr.Height, Round: round, BlockID: id}
	for _, k := range keys {
		v := consensus.Vote{Type: consensus.Commit, ChainID: hdr.ChainID, Height: hdr.Height, Round: round,
			BlockID: id, Validator: addr(k)}
		sig, err := testKeys[k].Sign(v.SignBytes())
		if err != nil {
			panic(err)
		}
		v.Signature = sig
		c.Votes = append(c.Votes, v)
	}
	return c
}

// update returns the arguments that move a client from h-1 to h.
func (tc *testChain) update(h uint64) (header.Header, consensus.Certificate, valset.Set) {
	return tc.headers[h], tc.cert(h), tc.set(h + 1)
}

// cert returns a deep copy of the certificate of height h, for tests to mangle.
func (tc *testChain) cert(h uint64) consensus.Certificate {
	c := tc.certs[h]
	c.Votes = append([]consensus.Vote(nil), c.Votes...)
	for i := range c.Votes {
		c.Votes[i].Signature = append([]byte(nil), c.Votes[i].Signature...)
	}
	return c
}

// client returns a client trusting header 1 and updated up to height at.
func (tc *testChain) client(t testing.TB, at uint64) *spv.ClientState {
	t.Helper()
	c, err := spv.NewClient(tc.id, tc.headers[1], tc.set(2))
	if err != nil {
		t.Fatal(err)
	}
	for h := uint64(2); h <= at; h++ {
		if c, err = c.Update(tc.update(h)); err != nil {
			t.Fatalf("update to %d: %v", h, err)
		}
	}
	return c
}

// snap is a client's canonical encoding, to check that a failed call changed nothing.
func snap(c *spv.ClientState) []byte { return encoding.MustMarshal(c) }
