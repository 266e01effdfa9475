package consensus

import (
	"errors"
	"fmt"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/valset"
)

// VoteType tells the two phases apart.
type VoteType uint8

// Vote types. A pre-commit is the first phase (Tendermint's prevote), a commit the
// second (Tendermint's precommit); a quorum of commits is a commit certificate.
const (
	PreCommit VoteType = 1
	Commit    VoteType = 2
)

func (t VoteType) String() string {
	switch t {
	case PreCommit:
		return "pre-commit"
	case Commit:
		return "commit"
	}
	return fmt.Sprintf("vote-type(%d)", uint8(t))
}

// Vote is one validator's signed vote for a block (or for nothing: the zero ID) in a
// round of a height.
type Vote struct {
	Type      VoteType       `cbor:"1,keyasint" json:"type"`
	ChainID   string         `cbor:"2,keyasint" json:"chain_id"`
	Height    uint64         `cbor:"3,keyasint" json:"height"`
	Round     uint32         `cbor:"4,keyasint" json:"round"`
	BlockID   hash.Hash      `cbor:"5,keyasint" json:"block_id"`
	Validator crypto.Address `cbor:"6,keyasint" json:"validator"`
	Signature []byte         `cbor:"7,keyasint" json:"signature"`
}

// IsNil reports whether the vote is for no block.
func (v *Vote) IsNil() bool { return v.BlockID.IsZero() }

// SignBytes returns what the validator signs: every field but the signature, under
// the vote domain, so a vote can never be replayed as a header or a transaction.
func (v *Vote) SignBytes() []byte {
	c := *v
	c.Signature = nil
	h := encoding.MustHash(hash.DomainVote, &c)
	return h[:]
}

// Proposal offers a block for a round. POLRound is the round whose pre-commit quorum
// for the block the proposer saw (a re-proposal of a block some honest validators may
// be locked on), or -1.
type Proposal struct {
	ChainID   string         `cbor:"1,keyasint" json:"chain_id"`
	Height    uint64         `cbor:"2,keyasint" json:"height"`
	Round     uint32         `cbor:"3,keyasint" json:"round"`
	POLRound  int32          `cbor:"4,keyasint" json:"pol_round"`
	BlockID   hash.Hash      `cbor:"5,keyasint" json:"block_id"`
	Block     []byte         `cbor:"6,keyasint" json:"block"`
	Proposer  crypto.Address `cbor:"7,keyasint" json:"proposer"`
	Signature []byte         `cbor:"8,keyasint" json:"signature"`
	// POL carries the pre-commit quorum of POLRound for the block, so that peers who
	// missed those votes can still accept the re-proposal (each vote is signed).
	POL []Vote `cbor:"9,keyasint,omitempty" json:"pol,omitempty"`
}

// SignBytes returns what the proposer signs: the proposal without the block bytes
// (the block ID binds them), the POL votes (signed each on their own) and the
// signature.
func (p *Proposal) SignBytes() []byte {
	c := *p
	c.Signature, c.Block, c.POL = nil, nil, nil
	h := encoding.MustHash(hash.DomainProposal, &c)
	return h[:]
}

// Certificate proves that a block is final: commit votes for it from validators
// holding more than two thirds of the height's voting power.
type Certificate struct {
	ChainID string    `cbor:"1,keyasint" json:"chain_id"`
	Height  uint64    `cbor:"2,keyasint" json:"height"`
	Round   uint32    `cbor:"3,keyasint" json:"round"`
	BlockID hash.Hash `cbor:"4,keyasint" json:"block_id"`
	Votes   []Vote    `cbor:"5,keyasint" json:"votes"`
}

// Decided carries a final block and its certificate; nodes send it to peers that
// are behind, so they can finish a height they missed the votes of.
type Decided struct {
	Cert  Certificate `cbor:"1,keyasint" json:"cert"`
	Block []byte      `cbor:"2,keyasint" json:"block"`
}

// Message is what validators exchange: exactly one field is set.
type Message struct {
	Proposal *Proposal `cbor:"1,keyasint,omitempty" json:"proposal,omitempty"`
	Vote     *Vote     `cbor:"2,keyasint,omitempty" json:"vote,omitempty"`
	Decided  *Decided  `cbor:"3,keyasint,omitempty" json:"decided,omitempty"`
}

// Sentinel errors of message checks; callers branch on them with errors.Is.
var (
	// ErrBadMessage: malformed, or for another chain.
	ErrBadMessage = errors.New("bad consensus message")
	// ErrBadSignature: a vote or proposal signature does not verify.
	ErrBadSignature = errors.New("bad consensus signature")
	// ErrNotValidator: the signer is not in the height's validator set.
	ErrNotValidator = errors.New("not a validator")
	// ErrNoQuorum: a certificate's votes hold no more than two thirds of the power.
	ErrNoQuorum = errors.New("no quorum")
)

// DecodeMessage parses one message and checks that exactly one field is set.
func DecodeMessage(b []byte) (*Message, error) {
	var m Message
	if err := encoding.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	if err := m.Check(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Check verifies that exactly one part of the message is set.
func (m *Message) Check() error {
	n := 0
	if m.Proposal != nil {
		n++
	}
	if m.Vote != nil {
		n++
	}
	if m.Decided != nil {
		n++
	}
	if n != 1 {
		return fmt.Errorf("%w: %d parts set, want 1", ErrBadMessage, n)
	}
	return nil
}

// Quorum reports whether power is more than two thirds of total.
func Quorum(power, total uint64) bool { return power*3 > total*2 }

// OneThird reports whether power is more than one third of total: at least one
// honest validator is among them.
func OneThird(power, total uint64) bool { return power*3 > total }

// checkVote verifies a vote's signature and membership against set.
func checkVote(chainID string, set valset.Set, v *Vote) (uint64, error) {
	if v.ChainID != chainID {
		return 0, fmt.Errorf("%w: vote for chain %q", ErrBadMessage, v.ChainID)
	}
	if v.Type != PreCommit && v.Type != Commit {
		return 0, fmt.Errorf("%w: vote type %d", ErrBadMessage, v.Type)
	}
	i := set.Find(v.Validator)
	if i < 0 {
		return 0, fmt.Errorf("%w: %s at height %d", ErrNotValidator, v.Validator, v.Height)
	}
	if err := crypto.Verify(set[i].PubKey, v.SignBytes(), v.Signature); err != nil {
		return 0, fmt.Errorf("%w: %s vote of %s: %v", ErrBadSignature, v.Type, v.Validator, err)
	}
	return set[i].Power, nil
}

// Verify checks that c is a valid certificate of its block under set: distinct
// validators of the set, valid commit signatures for c's block, height and chain,
// more than two thirds of the power. Light clients and catching-up nodes use it.
func (c *Certificate) Verify(chainID string, set valset.Set) error {
	if c.ChainID != chainID {
		return fmt.Errorf("%w: certificate for chain %q", ErrBadMessage, c.ChainID)
	}
	if c.BlockID.IsZero() {
		return fmt.Errorf("%w: certificate for no block", ErrBadMessage)
	}
	seen := make(map[crypto.Address]bool, len(c.Votes))
	var power uint64
	for i := range c.Votes {
		v := &c.Votes[i]
		if v.Type != Commit || v.Height != c.Height || v.Round != c.Round || v.BlockID != c.BlockID {
			return fmt.Errorf("%w: vote %d is not a commit of this block", ErrBadMessage, i)
		}
		if seen[v.Validator] {
			return fmt.Errorf("%w: validator %s votes twice", ErrBadMessage, v.Validator)
		}
		seen[v.Validator] = true
		p, err := checkVote(chainID, set, v)
		if err != nil {
			return fmt.Errorf("certificate vote %d: %w", i, err)
		}
		power += p
	}
	if !Quorum(power, set.TotalPower()) {
		return fmt.Errorf("%w: %d of %d power", ErrNoQuorum, power, set.TotalPower())
	}
	return nil
}
