package spv_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/header"
	"github.com/plugchain/plug/chain/proof"
	"github.com/plugchain/plug/chain/valset"
	"github.com/plugchain/plug/spv"
)

func TestClientFollowsValidatorSetChanges(t *testing.T) {
	tc := newTestChain(12, nil, nil)
	c, err := spv.NewClient(tc.id, tc.headers[1], tc.set(2))
	if err != nil {
		t.Fatal(err)
	}
	for h := uint64(2); h <= 12; h++ {
		before := snap(c)
		n, err := c.Update(tc.update(h))
		if err != nil {
			t.Fatalf("update to %d: %v", h, err)
		}
		if !bytes.Equal(before, snap(c)) {
			t.Fatalf("update to %d mutated the old state", h)
		}
		if n.Height != h || n.Header.Hash() != tc.headers[h].Hash() || n.NextSet.Hash() != tc.set(h+1).Hash() {
			t.Fatalf("after update to %d: height %d", h, n.Height)
		}
		if err := n.Check(); err != nil {
			t.Fatalf("after update to %d: %v", h, err)
		}
		c = n
	}
	if len(c.NextSet) != 4 || c.NextSet.TotalPower() != 45 {
		t.Fatalf("final next set: %d members, power %d", len(c.NextSet), c.NextSet.TotalPower())
	}
	for h := uint64(1); h <= 12; h++ {
		cs, err := c.Root(h)
		if err != nil || cs.HeaderHash != tc.headers[h].Hash() || cs.StateRoot != tc.headers[h].StateRoot {
			t.Fatalf("root %d: %+v, %v", h, cs, err)
		}
	}
	if _, err := c.Root(13); !errors.Is(err, spv.ErrUnknownHeight) {
		t.Fatalf("root 13: %v", err)
	}
	// The client state round-trips through the canonical encoding.
	var back spv.ClientState
	if err := encoding.Unmarshal(snap(c), &back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snap(&back), snap(c)) {
		t.Fatal("client state does not round-trip")
	}
}

func TestClientUnchangedSetMayBeOmitted(t *testing.T) {
	tc := newTestChain(4, nil, nil)
	c := tc.client(t, 2)
	hdr, cert, _ := tc.update(3)
	n, err := c.Update(hdr, cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n.NextSet.Hash() != tc.set(4).Hash() {
		t.Fatal("next set lost")
	}
	// Around a change the set must be given.
	tc2 := newTestChain(6, nil, nil)
	c2 := tc2.client(t, 4)
	hdr, cert, _ = tc2.update(5)
	if _, err := c2.Update(hdr, cert, nil); !errors.Is(err, spv.ErrBadHeader) {
		t.Fatalf("omitted changed set: %v", err)
	}
}

func TestNewClient(t *testing.T) {
	tc := newTestChain(3, nil, nil)
	if _, err := spv.NewClient("other", tc.headers[1], tc.set(2)); !errors.Is(err, spv.ErrWrongChain) {
		t.Errorf("wrong chain: %v", err)
	}
	if _, err := spv.NewClient(tc.id, tc.headers[1], tc.set(1)[:3]); !errors.Is(err, spv.ErrBadHeader) {
		t.Errorf("wrong next set: %v", err)
	}
	if _, err := spv.NewClient(tc.id, tc.headers[1], nil); !errors.Is(err, spv.ErrBadHeader) {
		t.Errorf("no next set: %v", err)
	}
}

// TestClientRejects checks every way an update can be wrong; each leaves the client
// unchanged and wraps the right sentinel.
func TestClientRejects(t *testing.T) {
	tc := newTestChain(12, nil, nil)
	resign := func(hdr header.Header) consensus.Certificate {
		return tc.sign(hdr, 0, tc.signers(hdr.Height)...)
	}
	type upd struct {
		hdr  header.Header
		cert consensus.Certificate
		next valset.Set
	}
	cases := []struct {
		name  string
		at    uint64 // the client's height
		make  func() upd
		want  error
		cause error // a consensus error that must be wrapped too
	}{
		{"skip a height", 2, func() upd { h, c, n := tc.update(4); return upd{h, c, n} }, spv.ErrBadHeader, nil},
		{"same height again", 3, func() upd { h, c, n := tc.update(3); return upd{h, c, n} }, spv.ErrBadHeader, nil},
		{"wrong prev hash", 2, func() upd {
			h, _, n := tc.update(3)
			h.PrevHash[0] ^= 1
			return upd{h, resign(h), n}
		}, spv.ErrBadHeader, nil},
		{"validators hash mismatch", 2, func() upd {
			h, _, n := tc.update(3)
			h.ValidatorsHash = tc.set(7).Hash()
			return upd{h, resign(h), n}
		}, spv.ErrBadHeader, nil},
		{"next set not the header's", 4, func() upd {
			h, c, _ := tc.update(5)
			return upd{h, c, tc.set(5)} // the header names set(6)
		}, spv.ErrBadHeader, nil},
		{"next set with other power", 7, func() upd {
			h, c, n := tc.update(8)
			n[0].Power++
			return upd{h, c, n}
		}, spv.ErrBadHeader, nil},
		{"time backwards", 2, func() upd {
			h, _, n := tc.update(3)
			h.Time = tc.headers[2].Time - 1
			return upd{h, resign(h), n}
		}, spv.ErrBadHeader, nil},
		{"wrong chain id", 2, func() upd {
			h, _, n := tc.update(3)
			h.ChainID = "other-chain"
			return upd{h, resign(h), n}
		}, spv.ErrWrongChain, nil},
		{"certificate of another chain", 2, func() upd {
			h, c, n := tc.update(3)
			c.ChainID = "other-chain"
			return upd{h, c, n}
		}, spv.ErrWrongChain, nil},
		{"certificate below two thirds", 2, func() upd {
			h, _, n := tc.update(3)
			return upd{h, tc.sign(h, 0, 0, 1), n} // 20 of 40
		}, spv.ErrBadCertificate, consensus.ErrNoQuorum},
		{"exactly two thirds is not enough", 9, func() upd {
			// set(10) = 0:5, 1:10, 2:10, 4:20 (45): 1+2 = 20, 4+0 = 25; 4+1 = 30 = 2/3 exactly.
			h, _, n := tc.update(10)
			return upd{h, tc.sign(h, 0, 4, 1), n}
		}, spv.ErrBadCertificate, consensus.ErrNoQuorum},
		{"certificate for another block", 2, func() upd {
			h, _, n := tc.update(3)
			other := h
			other.StateRoot[0] ^= 1
			return upd{h, resign(other), n}
		}, spv.ErrBadCertificate, nil},
		{"certificate for another height", 2, func() upd {
			h, _, n := tc.update(3)
			c := resign(h)
			c.Height = 4
			return upd{h, c, n}
		}, spv.ErrBadCertificate, nil},
		{"forged signature", 2, func() upd {
			h, c, n := tc.update(3)
			c.Votes[1].Signature = append([]byte(nil), c.Votes[1].Signature...)
			c.Votes[1].Signature[5] ^= 0x40
			return upd{h, c, n}
		}, spv.ErrBadCertificate, consensus.ErrBadSignature},
		{"duplicate votes", 2, func() upd {
			h, _, n := tc.update(3)
			c := tc.sign(h, 0, 0, 1)
			c.Votes = append(c.Votes, c.Votes[0]) // 30 of 40 if counted twice
			return upd{h, c, n}
		}, spv.ErrBadCertificate, consensus.ErrBadMessage},
		{"signer outside the set", 2, func() upd {
			h, _, n := tc.update(3)
			return upd{h, tc.sign(h, 0, 0, 1, 5), n}
		}, spv.ErrBadCertificate, consensus.ErrNotValidator},
		{"departed validator signs after the change", 5, func() upd {
			h, _, n := tc.update(6) // set(6) = 0,1,2; 3 has left
			return upd{h, tc.sign(h, 0, 0, 1, 3), n}
		}, spv.ErrBadCertificate, consensus.ErrNotValidator},
		{"old set cannot sign after a power change", 8, func() upd {
			h, _, n := tc.update(9) // 0+1+2 hold 25 of 45
			return upd{h, tc.sign(h, 0, 0, 1, 2), n}
		}, spv.ErrBadCertificate, consensus.ErrNoQuorum},
		{"pre-commit votes are not a certificate", 2, func() upd {
			h, c, n := tc.update(3)
			for i := range c.Votes {
				v := &c.Votes[i]
				v.Type = consensus.PreCommit
				v.Signature, _ = testKeys[0].Sign(v.SignBytes())
			}
			return upd{h, c, n}
		}, spv.ErrBadCertificate, consensus.ErrBadMessage},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			c := tc.client(t, tt.at)
			before := snap(c)
			u := tt.make()
			n, err := c.Update(u.hdr, u.cert, u.next)
			if err == nil || n != nil {
				t.Fatalf("accepted")
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if tt.cause != nil && !errors.Is(err, tt.cause) {
				t.Fatalf("error %v does not wrap %v", err, tt.cause)
			}
			if !bytes.Equal(before, snap(c)) {
				t.Fatal("a rejected update changed the client")
			}
			// The genuine update still goes through afterwards.
			if _, err := c.Update(tc.update(tt.at + 1)); err != nil {
				t.Fatalf("genuine update after rejection: %v", err)
			}
		})
	}
}

func TestClientRootWindow(t *testing.T) {
	const n = spv.MaxRoots + 20
	flat := func(uint64) []member { return []member{{0, 1}, {1, 1}, {2, 1}, {3, 1}} }
	tc := newTestChain(n, flat, nil)
	c := tc.client(t, n)
	if len(c.Roots) != spv.MaxRoots || c.Roots[0].Height != n-spv.MaxRoots+1 {
		t.Fatalf("window: %d roots from %d", len(c.Roots), c.Roots[0].Height)
	}
	if _, err := c.Root(1); !errors.Is(err, spv.ErrUnknownHeight) {
		t.Fatalf("evicted root: %v", err)
	}
	if err := c.VerifyTx(1, testItems("tx", 1, 5)[0], &proof.ListProof{Index: 0, Count: 1}); !errors.Is(err, spv.ErrUnknownHeight) {
		t.Fatalf("proof at evicted height: %v", err)
	}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestClientVerifyTxAndReceipt(t *testing.T) {
	tc := newTestChain(4, nil, nil)
	c := tc.client(t, 4)
	for h := uint64(1); h <= 4; h++ {
		txs, rcs := testItems("tx", h, 5), testItems("receipt", h, 5)
		for i := range txs {
			p, _ := proof.NewListProof(txs, i)
			if err := c.VerifyTx(h, txs[i], p); err != nil {
				t.Fatalf("tx %d at %d: %v", i, h, err)
			}
			if err := c.VerifyReceipt(h, txs[i], p); !errors.Is(err, proof.ErrProofMismatch) {
				t.Fatalf("tx proof accepted as receipt proof: %v", err)
			}
			q, _ := proof.NewListProof(rcs, i)
			if err := c.VerifyReceipt(h, rcs[i], q); err != nil {
				t.Fatalf("receipt %d at %d: %v", i, h, err)
			}
			if err := c.VerifyTx(h%4+1, txs[i], p); !errors.Is(err, proof.ErrProofMismatch) {
				t.Fatalf("tx proof at another height: %v", err)
			}
		}
	}
	if err := c.VerifyTx(1, hash.Hash{}, nil); !errors.Is(err, proof.ErrProofMalformed) {
		t.Fatalf("nil proof: %v", err)
	}
	if err := c.VerifyTx(9, hash.Hash{}, &proof.ListProof{}); !errors.Is(err, spv.ErrUnknownHeight) {
		t.Fatalf("unknown height: %v", err)
	}
}

// conflicting returns a header at height h that differs from the chain's, with a
// certificate by the whole set of h.
func (tc *testChain) conflicting(h uint64) (header.Header, consensus.Certificate) {
	hdr := tc.headers[h]
	hdr.StateRoot = hash.Sum("test/forged", hdr.StateRoot[:])
	return hdr, tc.sign(hdr, 1, tc.signers(h)...)
}

func TestMisbehaviourFreezes(t *testing.T) {
	tc := newTestChain(10, nil, nil)
	fork4, fork4Cert := tc.conflicting(4)
	fork7, fork7Cert := tc.conflicting(7)
	cases := []struct {
		name string
		at   uint64
		m    spv.Misbehaviour
	}{
		{"verified height, no certificate for the verified header", 5, spv.Misbehaviour{
			Height: 4, HeaderA: tc.headers[4], HeaderB: fork4, CertB: fork4Cert, Set: tc.set(4)}},
		{"verified height, both certificates, verified header second", 5, spv.Misbehaviour{
			Height: 4, HeaderA: fork4, CertA: fork4Cert, HeaderB: tc.headers[4], CertB: tc.certs[4], Set: tc.set(4)}},
		{"latest height", 4, spv.Misbehaviour{
			Height: 4, HeaderA: tc.headers[4], HeaderB: fork4, CertB: fork4Cert, Set: tc.set(4)}},
		{"two conflicting updates at height+1", 6, spv.Misbehaviour{
			Height: 7, HeaderA: tc.headers[7], CertA: tc.certs[7], HeaderB: fork7, CertB: fork7Cert}},
		{"height+1 with the set given", 6, spv.Misbehaviour{
			Height: 7, HeaderA: fork7, CertA: fork7Cert, HeaderB: tc.headers[7], CertB: tc.certs[7], Set: tc.set(7)}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			c := tc.client(t, tt.at)
			before := snap(c)
			f, err := c.CheckMisbehaviour(tt.m)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, snap(c)) {
				t.Fatal("CheckMisbehaviour mutated the client")
			}
			if !f.Frozen || f.Evidence == nil || f.Evidence.HeaderB.Hash() != tt.m.HeaderB.Hash() {
				t.Fatal("not frozen with the evidence")
			}
			if err := f.Check(); err != nil {
				t.Fatal(err)
			}
			// Every verification now fails with ErrFrozen.
			h := f.Height
			txs := testItems("tx", h, 5)
			p, _ := proof.NewListProof(txs, 0)
			if err := c.VerifyTx(h, txs[0], p); err != nil {
				t.Fatalf("unfrozen copy: %v", err)
			}
			checks := map[string]error{
				"VerifyTx":            f.VerifyTx(h, txs[0], p),
				"VerifyReceipt":       f.VerifyReceipt(h, txs[0], p),
				"VerifyMembership":    f.VerifyMembership(h, "k", nil, proof.NewStateProof(nil, nil)),
				"VerifyNonMembership": f.VerifyNonMembership(h, "k", proof.NewStateProof(nil, nil)),
			}
			_, checks["Update"] = f.Update(tc.update(h + 1))
			_, checks["CheckMisbehaviour"] = f.CheckMisbehaviour(tt.m)
			for name, err := range checks {
				if !errors.Is(err, spv.ErrFrozen) {
					t.Errorf("%s on a frozen client: %v", name, err)
				}
			}
			// The evidence survives the canonical encoding.
			var back spv.ClientState
			if err := encoding.Unmarshal(snap(f), &back); err != nil || !back.Frozen || back.Evidence == nil {
				t.Fatalf("frozen client round-trip: %v", err)
			}
		})
	}
}

func TestMisbehaviourRejected(t *testing.T) {
	tc := newTestChain(10, nil, nil)
	fork4, fork4Cert := tc.conflicting(4)
	fork7, fork7Cert := tc.conflicting(7)
	weak := tc.sign(fork4, 1, 0, 1) // 20 of 40
	// The same chain id, signed by other keys.
	other := newTestChain(10, func(uint64) []member { return []member{{5, 1}, {6, 1}, {7, 1}} }, nil)
	cases := []struct {
		name string
		at   uint64
		m    spv.Misbehaviour
		want error
	}{
		{"same header twice", 5, spv.Misbehaviour{Height: 4, HeaderA: tc.headers[4], HeaderB: tc.headers[4],
			CertB: tc.certs[4], Set: tc.set(4)}, spv.ErrBadMisbehaviour},
		{"conflict without quorum", 5, spv.Misbehaviour{Height: 4, HeaderA: tc.headers[4], HeaderB: fork4,
			CertB: weak, Set: tc.set(4)}, spv.ErrBadCertificate},
		{"conflict with a certificate of another header", 5, spv.Misbehaviour{Height: 4, HeaderA: tc.headers[4],
			HeaderB: fork4, CertB: tc.certs[4], Set: tc.set(4)}, spv.ErrBadCertificate},
		{"missing set at a verified height", 5, spv.Misbehaviour{Height: 4, HeaderA: tc.headers[4], HeaderB: fork4,
			CertB: fork4Cert}, spv.ErrBadMisbehaviour},
		{"set of another height", 7, spv.Misbehaviour{Height: 4, HeaderA: tc.headers[4], HeaderB: fork4,
			CertB: fork4Cert, Set: tc.set(7)}, spv.ErrBadMisbehaviour},
		{"wrong set at height+1", 6, spv.Misbehaviour{Height: 7, HeaderA: tc.headers[7], CertA: tc.certs[7],
			HeaderB: fork7, CertB: fork7Cert, Set: tc.set(4)}, spv.ErrBadMisbehaviour},
		{"height+1 needs both certificates", 6, spv.Misbehaviour{Height: 7, HeaderA: tc.headers[7],
			HeaderB: fork7, CertB: fork7Cert}, spv.ErrBadCertificate},
		{"beyond height+1", 3, spv.Misbehaviour{Height: 7, HeaderA: tc.headers[7], CertA: tc.certs[7],
			HeaderB: fork7, CertB: fork7Cert}, spv.ErrUnknownHeight},
		{"headers at another height", 5, spv.Misbehaviour{Height: 3, HeaderA: tc.headers[4], HeaderB: fork4,
			CertB: fork4Cert, Set: tc.set(4)}, spv.ErrBadMisbehaviour},
		{"fork signed by strangers", 5, spv.Misbehaviour{Height: 4, HeaderA: other.headers[4], CertA: other.certs[4],
			HeaderB: tc.headers[4], Set: tc.set(4)}, spv.ErrBadCertificate},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			c := tc.client(t, tt.at)
			before := snap(c)
			f, err := c.CheckMisbehaviour(tt.m)
			if err == nil || f != nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if !bytes.Equal(before, snap(c)) || c.Frozen {
				t.Fatal("rejected evidence changed the client")
			}
		})
	}
}
