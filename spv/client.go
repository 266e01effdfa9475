package spv

import (
	"errors"
	"fmt"
	"sort"

	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/header"
	"github.com/plugchain/plug/chain/proof"
	"github.com/plugchain/plug/chain/valset"
)

// A light client of one chain follows its headers one height at a time, each header
// proven final by a commit certificate of the validator set the previous header
// named as next. It keeps a window of recent verified roots to check state,
// transaction and receipt proofs against. The trust model is in docs/light-client.md.

// MaxRoots is how many verified heights a client keeps roots of; the oldest is
// evicted first.
const MaxRoots = 256

// Sentinel errors of the light client; callers branch on them with errors.Is.
var (
	// ErrFrozen: the client has seen misbehaviour and verifies nothing any more.
	ErrFrozen = errors.New("light client frozen")
	// ErrUnknownHeight: the height is not (or no longer) in the client's window.
	ErrUnknownHeight = errors.New("unknown height")
	// ErrBadHeader: the header does not follow the client's latest one (height,
	// previous hash, validator-set hashes, time) or is otherwise malformed.
	ErrBadHeader = errors.New("bad header")
	// ErrBadCertificate: the certificate does not prove the header final.
	ErrBadCertificate = errors.New("bad certificate")
	// ErrWrongChain: a header or certificate of another chain.
	ErrWrongChain = errors.New("wrong chain")
	// ErrBadMisbehaviour: the evidence does not prove misbehaviour.
	ErrBadMisbehaviour = errors.New("evidence is not misbehaviour")
)

// ConsensusState is what a client keeps of one verified header: the roots proofs
// are checked against.
type ConsensusState struct {
	Height       uint64    `cbor:"1,keyasint" json:"height"`
	Time         int64     `cbor:"2,keyasint" json:"time"`
	StateRoot    hash.Hash `cbor:"3,keyasint" json:"state_root"`
	TxRoot       hash.Hash `cbor:"4,keyasint" json:"tx_root"`
	ReceiptsRoot hash.Hash `cbor:"5,keyasint" json:"receipts_root"`
	HeaderHash   hash.Hash `cbor:"6,keyasint" json:"header_hash"`
	// ValidatorsHash is the set that signed the header; misbehaviour at this height
	// is checked against it.
	ValidatorsHash hash.Hash `cbor:"7,keyasint" json:"validators_hash"`
}

func consensusState(h *header.Header) ConsensusState {
	return ConsensusState{
		Height: h.Height, Time: h.Time, StateRoot: h.StateRoot, TxRoot: h.TxRoot,
		ReceiptsRoot: h.ReceiptsRoot, HeaderHash: h.Hash(), ValidatorsHash: h.ValidatorsHash,
	}
}

// Misbehaviour is evidence of a fork: two certificates for different headers at one
// height. A header the client has already verified at Height needs no certificate.
type Misbehaviour struct {
	Height  uint64                `cbor:"1,keyasint" json:"height"`
	HeaderA header.Header         `cbor:"2,keyasint" json:"header_a"`
	HeaderB header.Header         `cbor:"3,keyasint" json:"header_b"`
	CertA   consensus.Certificate `cbor:"4,keyasint" json:"cert_a"`
	CertB   consensus.Certificate `cbor:"5,keyasint" json:"cert_b"`
	// Set is the validator set that signs Height. It may be left out when Height is
	// the client's Height+1 (the client's NextSet is used); otherwise it must hash
	// to the ValidatorsHash the client verified at Height.
	Set valset.Set `cbor:"6,keyasint,omitempty" json:"set,omitempty"`
}

// HeaderUpdate is what a relay carries to move a client one height on: the
// arguments of ClientState.Update. NextSet may be omitted when the set is unchanged.
type HeaderUpdate struct {
	Header  header.Header         `cbor:"1,keyasint" json:"header"`
	Cert    consensus.Certificate `cbor:"2,keyasint" json:"cert"`
	NextSet valset.Set            `cbor:"3,keyasint,omitempty" json:"next_set,omitempty"`
}

// Apply is c.Update(u.Header, u.Cert, u.NextSet).
func (c *ClientState) Apply(u *HeaderUpdate) (*ClientState, error) {
	return c.Update(u.Header, u.Cert, u.NextSet)
}

// ClientState is everything a light client of one chain keeps. It is a plain value,
// so a chain can store it in its state; methods never mutate it but return a new one.
type ClientState struct {
	ChainID string `cbor:"1,keyasint" json:"chain_id"`
	// Height is the latest verified height.
	Height uint64 `cbor:"2,keyasint" json:"height"`
	// Header is the latest verified header.
	Header header.Header `cbor:"3,keyasint" json:"header"`
	// NextSet signs Height+1; its hash is Header.NextValidatorsHash.
	NextSet  valset.Set    `cbor:"4,keyasint" json:"next_set"`
	Frozen   bool          `cbor:"5,keyasint" json:"frozen"`
	Evidence *Misbehaviour `cbor:"6,keyasint,omitempty" json:"evidence,omitempty"`
	// Roots are the verified heights' consensus states, by height, at most MaxRoots.
	Roots []ConsensusState `cbor:"7,keyasint" json:"roots"`
}

// NewClient starts a client from a root of trust: a header of chainID chosen out of
// band (genesis, or a recent header an admin vouches for) and the set that signs
// the height after it.
func NewClient(chainID string, trusted header.Header, nextSet valset.Set) (*ClientState, error) {
	if chainID == "" {
		return nil, fmt.Errorf("new light client: %w: empty chain id", ErrWrongChain)
	}
	if trusted.ChainID != chainID {
		return nil, fmt.Errorf("new light client of %q: %w: trusted header is of %q", chainID, ErrWrongChain, trusted.ChainID)
	}
	if err := nextSet.Check(); err != nil {
		return nil, fmt.Errorf("new light client of %q: %w: next set: %w", chainID, ErrBadHeader, err)
	}
	if h := nextSet.Hash(); h != trusted.NextValidatorsHash {
		return nil, fmt.Errorf("new light client of %q: %w: next set hashes to %s, header names %s",
			chainID, ErrBadHeader, h.Short(), trusted.NextValidatorsHash.Short())
	}
	return &ClientState{
		ChainID: chainID, Height: trusted.Height, Header: trusted,
		NextSet: cloneSet(nextSet), Roots: []ConsensusState{consensusState(&trusted)},
	}, nil
}

// Check verifies a client state's own invariants, e.g. after decoding a stored one.
func (c *ClientState) Check() error {
	switch {
	case c.ChainID == "" || c.Header.ChainID != c.ChainID:
		return fmt.Errorf("light client: %w: chain %q, header of %q", ErrWrongChain, c.ChainID, c.Header.ChainID)
	case c.Height != c.Header.Height:
		return fmt.Errorf("light client of %q: %w: height %d, header at %d", c.ChainID, ErrBadHeader, c.Height, c.Header.Height)
	case c.Frozen != (c.Evidence != nil):
		return fmt.Errorf("light client of %q: %w: frozen=%t without matching evidence", c.ChainID, ErrBadHeader, c.Frozen)
	case len(c.Roots) == 0 || len(c.Roots) > MaxRoots:
		return fmt.Errorf("light client of %q: %w: %d roots", c.ChainID, ErrBadHeader, len(c.Roots))
	case c.Roots[len(c.Roots)-1] != consensusState(&c.Header):
		return fmt.Errorf("light client of %q: %w: last root is not the latest header's", c.ChainID, ErrBadHeader)
	}
	for i := 1; i < len(c.Roots); i++ {
		if c.Roots[i].Height <= c.Roots[i-1].Height {
			return fmt.Errorf("light client of %q: %w: roots not sorted by height", c.ChainID, ErrBadHeader)
		}
	}
	if err := c.NextSet.Check(); err != nil {
		return fmt.Errorf("light client of %q: %w: next set: %w", c.ChainID, ErrBadHeader, err)
	}
	if c.NextSet.Hash() != c.Header.NextValidatorsHash {
		return fmt.Errorf("light client of %q: %w: next set does not match the header", c.ChainID, ErrBadHeader)
	}
	return nil
}

// Update verifies the header at Height+1 and returns the client moved on to it.
// Updates are sequential: no height may be skipped, so every validator-set change is
// followed. The header must name the latest header as previous, be signed (more
// than two thirds of the power, commit votes for its hash) by NextSet, not go back
// in time, and nextSet must be the set it names as next (nil when the header keeps
// the set it was signed by). On error c is unchanged.
func (c *ClientState) Update(hdr header.Header, cert consensus.Certificate, nextSet valset.Set) (*ClientState, error) {
	if c.Frozen {
		return nil, fmt.Errorf("update light client of %q: %w", c.ChainID, ErrFrozen)
	}
	want := c.Height + 1
	fail := func(kind error, format string, a ...any) (*ClientState, error) {
		return nil, fmt.Errorf("update light client of %q to height %d: %w: %s", c.ChainID, want, kind, fmt.Sprintf(format, a...))
	}
	if hdr.ChainID != c.ChainID {
		return fail(ErrWrongChain, "header of chain %q", hdr.ChainID)
	}
	if cert.ChainID != c.ChainID {
		return fail(ErrWrongChain, "certificate of chain %q", cert.ChainID)
	}
	if hdr.Height != want {
		return fail(ErrBadHeader, "header at height %d (updates are sequential)", hdr.Height)
	}
	if prev := c.Header.Hash(); hdr.PrevHash != prev {
		return fail(ErrBadHeader, "previous hash %s, latest header is %s", hdr.PrevHash.Short(), prev.Short())
	}
	if vh := c.NextSet.Hash(); hdr.ValidatorsHash != vh {
		return fail(ErrBadHeader, "validators hash %s, the trusted next set is %s", hdr.ValidatorsHash.Short(), vh.Short())
	}
	if hdr.Time < c.Header.Time {
		return fail(ErrBadHeader, "time %d goes back from %d", hdr.Time, c.Header.Time)
	}
	id := hdr.Hash()
	if cert.Height != hdr.Height || cert.BlockID != id {
		return fail(ErrBadCertificate, "certificate is for height %d block %s, header is %s",
			cert.Height, cert.BlockID.Short(), id.Short())
	}
	if nextSet == nil && hdr.NextValidatorsHash == hdr.ValidatorsHash {
		nextSet = c.NextSet // the set does not change; the relay may leave it out
	}
	if err := nextSet.Check(); err != nil {
		return fail(ErrBadHeader, "next set: %v", err)
	}
	if h := nextSet.Hash(); h != hdr.NextValidatorsHash {
		return fail(ErrBadHeader, "next set hashes to %s, header names %s", h.Short(), hdr.NextValidatorsHash.Short())
	}
	if err := cert.Verify(c.ChainID, c.NextSet); err != nil {
		return nil, fmt.Errorf("update light client of %q to height %d: %w: %w", c.ChainID, want, ErrBadCertificate, err)
	}
	n := c.clone()
	n.Height, n.Header, n.NextSet = hdr.Height, hdr, cloneSet(nextSet)
	n.Roots = append(n.Roots, ConsensusState{
		Height: hdr.Height, Time: hdr.Time, StateRoot: hdr.StateRoot, TxRoot: hdr.TxRoot,
		ReceiptsRoot: hdr.ReceiptsRoot, HeaderHash: id, ValidatorsHash: hdr.ValidatorsHash,
	})
	if len(n.Roots) > MaxRoots {
		n.Roots = append([]ConsensusState(nil), n.Roots[len(n.Roots)-MaxRoots:]...)
	}
	return n, nil
}

// CheckMisbehaviour checks evidence of a fork: two different headers at m.Height,
// each final under the set that signs that height (the client's NextSet for
// Height+1, else m.Set matching the verified ValidatorsHash of a height in the
// window). A header equal to the one the client verified at that height needs no
// certificate. On proof it returns a frozen copy of c keeping the evidence; otherwise
// an error, and c is unchanged.
func (c *ClientState) CheckMisbehaviour(m Misbehaviour) (*ClientState, error) {
	if c.Frozen {
		return nil, fmt.Errorf("misbehaviour for light client of %q: %w", c.ChainID, ErrFrozen)
	}
	fail := func(kind error, format string, a ...any) (*ClientState, error) {
		return nil, fmt.Errorf("misbehaviour for light client of %q at height %d: %w: %s", c.ChainID, m.Height, kind, fmt.Sprintf(format, a...))
	}
	var set valset.Set
	var verified hash.Hash // the header hash already verified at m.Height, if any
	switch {
	case m.Height == c.Height+1:
		if m.Set != nil && m.Set.Hash() != c.Header.NextValidatorsHash {
			return fail(ErrBadMisbehaviour, "set is not the client's next set")
		}
		set = c.NextSet
	case m.Height <= c.Height:
		cs, err := c.Root(m.Height)
		if err != nil {
			return nil, fmt.Errorf("misbehaviour for light client of %q: %w", c.ChainID, err)
		}
		if err := m.Set.Check(); err != nil {
			return fail(ErrBadMisbehaviour, "set: %v", err)
		}
		if m.Set.Hash() != cs.ValidatorsHash {
			return fail(ErrBadMisbehaviour, "set hashes to %s, verified validators hash is %s", m.Set.Hash().Short(), cs.ValidatorsHash.Short())
		}
		set, verified = m.Set, cs.HeaderHash
	default:
		return nil, fmt.Errorf("misbehaviour for light client of %q: %w: height %d is past %d+1",
			c.ChainID, ErrUnknownHeight, m.Height, c.Height)
	}
	ha, hb := m.HeaderA.Hash(), m.HeaderB.Hash()
	if ha == hb {
		return fail(ErrBadMisbehaviour, "the two headers are the same")
	}
	for _, s := range []struct {
		name string
		h    *header.Header
		id   hash.Hash
		cert *consensus.Certificate
	}{{"A", &m.HeaderA, ha, &m.CertA}, {"B", &m.HeaderB, hb, &m.CertB}} {
		if s.h.ChainID != c.ChainID {
			return fail(ErrWrongChain, "header %s is of chain %q", s.name, s.h.ChainID)
		}
		if s.h.Height != m.Height {
			return fail(ErrBadMisbehaviour, "header %s is at height %d", s.name, s.h.Height)
		}
		if s.id == verified {
			continue
		}
		if s.cert.Height != m.Height || s.cert.BlockID != s.id {
			return fail(ErrBadCertificate, "certificate %s is not for header %s", s.name, s.name)
		}
		if err := s.cert.Verify(c.ChainID, set); err != nil {
			return nil, fmt.Errorf("misbehaviour for light client of %q at height %d: %w: certificate %s: %w",
				c.ChainID, m.Height, ErrBadCertificate, s.name, err)
		}
	}
	n := c.clone()
	n.Frozen = true
	ev := cloneMisbehaviour(m)
	n.Evidence = &ev
	return n, nil
}

// Root returns the consensus state verified at height.
func (c *ClientState) Root(height uint64) (ConsensusState, error) {
	i := sort.Search(len(c.Roots), func(i int) bool { return c.Roots[i].Height >= height })
	if i == len(c.Roots) || c.Roots[i].Height != height {
		lo, hi := uint64(0), uint64(0)
		if len(c.Roots) > 0 {
			lo, hi = c.Roots[0].Height, c.Roots[len(c.Roots)-1].Height
		}
		return ConsensusState{}, fmt.Errorf("light client of %q: %w: %d (window %d..%d)", c.ChainID, ErrUnknownHeight, height, lo, hi)
	}
	return c.Roots[i], nil
}

// root is Root for verification: it refuses on a frozen client.
func (c *ClientState) root(height uint64) (ConsensusState, error) {
	if c.Frozen {
		return ConsensusState{}, fmt.Errorf("light client of %q: %w", c.ChainID, ErrFrozen)
	}
	return c.Root(height)
}

// VerifyMembership checks that key held value in the state verified at height.
func (c *ClientState) VerifyMembership(height uint64, key string, value []byte, p *proof.StateProof) error {
	cs, err := c.root(height)
	if err != nil {
		return err
	}
	if p == nil {
		return fmt.Errorf("state of %q at %d, key %q: %w: no proof", c.ChainID, height, key, proof.ErrProofMalformed)
	}
	if err := p.VerifyMembership(cs.StateRoot, key, value); err != nil {
		return fmt.Errorf("state of %q at %d, key %q: %w", c.ChainID, height, key, err)
	}
	return nil
}

// VerifyNonMembership checks that key held no value in the state verified at height.
func (c *ClientState) VerifyNonMembership(height uint64, key string, p *proof.StateProof) error {
	cs, err := c.root(height)
	if err != nil {
		return err
	}
	if p == nil {
		return fmt.Errorf("state of %q at %d, key %q absent: %w: no proof", c.ChainID, height, key, proof.ErrProofMalformed)
	}
	if err := p.VerifyNonMembership(cs.StateRoot, key); err != nil {
		return fmt.Errorf("state of %q at %d, key %q absent: %w", c.ChainID, height, key, err)
	}
	return nil
}

// VerifyTx checks that the transaction with ID txID is in the block verified at
// height (against its TxRoot).
func (c *ClientState) VerifyTx(height uint64, txID hash.Hash, p *proof.ListProof) error {
	cs, err := c.root(height)
	if err != nil {
		return err
	}
	return verifyList("transaction", c.ChainID, height, cs.TxRoot, txID, p)
}

// VerifyReceipt checks that the receipt with hash receiptHash is in the block
// verified at height (against its ReceiptsRoot).
func (c *ClientState) VerifyReceipt(height uint64, receiptHash hash.Hash, p *proof.ListProof) error {
	cs, err := c.root(height)
	if err != nil {
		return err
	}
	return verifyList("receipt", c.ChainID, height, cs.ReceiptsRoot, receiptHash, p)
}

func verifyList(what, chainID string, height uint64, root, item hash.Hash, p *proof.ListProof) error {
	if p == nil {
		return fmt.Errorf("%s %s in %q at %d: %w: no proof", what, item.Short(), chainID, height, proof.ErrProofMalformed)
	}
	if err := p.Verify(root, item); err != nil {
		return fmt.Errorf("%s %s in %q at %d: %w", what, item.Short(), chainID, height, err)
	}
	return nil
}

// clone returns a copy of c that shares no mutable memory with it.
func (c *ClientState) clone() *ClientState {
	n := *c
	n.NextSet = cloneSet(c.NextSet)
	n.Roots = append(make([]ConsensusState, 0, len(c.Roots)+1), c.Roots...)
	if c.Evidence != nil {
		ev := cloneMisbehaviour(*c.Evidence)
		n.Evidence = &ev
	}
	return &n
}

func cloneSet(s valset.Set) valset.Set {
	if s == nil {
		return nil
	}
	n := make(valset.Set, len(s))
	for i, v := range s {
		n[i] = v
		n[i].PubKey = crypto.PublicKey{Scheme: v.PubKey.Scheme, Key: cloneBytes(v.PubKey.Key)}
	}
	return n
}

func cloneCert(c consensus.Certificate) consensus.Certificate {
	if c.Votes != nil {
		votes := make([]consensus.Vote, len(c.Votes))
		for i, v := range c.Votes {
			votes[i] = v
			votes[i].Signature = cloneBytes(v.Signature)
		}
		c.Votes = votes
	}
	return c
}

func cloneMisbehaviour(m Misbehaviour) Misbehaviour {
	m.CertA, m.CertB, m.Set = cloneCert(m.CertA), cloneCert(m.CertB), cloneSet(m.Set)
	return m
}

// cloneBytes copies b, keeping nil and empty apart (they encode differently).
func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}
