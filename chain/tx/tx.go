// Package tx defines PLUG transactions: exactly one transform plus one proof
// (signature) per declared signer. Each signer carries its next nonce, which gives
// replay protection: a transaction applies only when every signer's nonce matches
// the state, and applying it consumes those nonces.
package tx

import (
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/transform"
)

// Limits that keep one transaction from costing a node more than it should.
const (
	// MaxTxSize is the largest encoded transaction accepted.
	MaxTxSize = 64 << 10
	// MaxSigners is the most signers a transaction may have.
	MaxSigners = 16
	// MaxTypeLen is the longest transform type name.
	MaxTypeLen = 64
)

// Sentinel errors; callers branch on them with errors.Is.
var (
	// ErrMalformed: the transaction's shape is wrong (no signers, proof count, sizes).
	ErrMalformed = errors.New("malformed transaction")
	// ErrWrongChain: the transaction names another chain.
	ErrWrongChain = errors.New("wrong chain id")
	// ErrBadProof: a signature does not verify.
	ErrBadProof = errors.New("bad proof")
	// ErrBadNonce: a signer's nonce is not the next one (a replay or a gap).
	ErrBadNonce = errors.New("bad nonce")
	// ErrTooLarge: the transaction exceeds MaxTxSize.
	ErrTooLarge = errors.New("transaction too large")
)

// Signer is one identity that signs a transaction, with the nonce it consumes.
type Signer struct {
	Key   crypto.PublicKey `cbor:"1,keyasint" json:"key"`
	Nonce uint64           `cbor:"2,keyasint" json:"nonce"`
}

// Body is what every signer signs.
type Body struct {
	ChainID string          `cbor:"1,keyasint" json:"chain_id"`
	Type    string          `cbor:"2,keyasint" json:"type"`
	Payload cbor.RawMessage `cbor:"3,keyasint" json:"payload"`
	Signers []Signer        `cbor:"4,keyasint" json:"signers"`
	// Memo is free text for the parties (an invoice number, a trade reference).
	Memo string `cbor:"5,keyasint,omitempty" json:"memo,omitempty"`
}

// Proof is one signer's signature over the body's hash, in the signers' order.
type Proof struct {
	Signature []byte `cbor:"1,keyasint" json:"signature"`
}

// Tx is a signed transaction. A Tx returned by Decode remembers its encoding, so
// its ID and Encode cost no re-encoding; such a Tx must not be modified.
type Tx struct {
	Body   Body    `cbor:"1,keyasint" json:"body"`
	Proofs []Proof `cbor:"2,keyasint" json:"proofs"`

	raw []byte    // canonical encoding, set by Decode
	id  hash.Hash // hash of raw, set by Decode: IDs are asked for many times per transaction
}

// New builds an unsigned transaction carrying tr, registered in reg.
func New(reg *transform.Registry, chainID string, tr transform.Transform, signers ...Signer) (*Tx, error) {
	name, err := reg.Name(tr)
	if err != nil {
		return nil, err
	}
	payload, err := encoding.Marshal(tr)
	if err != nil {
		return nil, fmt.Errorf("encode %s payload: %w", name, err)
	}
	return FromPayload(chainID, name, payload, signers...), nil
}

// FromPayload builds an unsigned transaction of type typ around an already
// encoded payload: for callers that encode payloads ahead of knowing their
// signers' nonces (a relay packing a pass's steps before it signs them).
func FromPayload(chainID, typ string, payload []byte, signers ...Signer) *Tx {
	return &Tx{Body: Body{ChainID: chainID, Type: typ, Payload: payload, Signers: signers}}
}

// SignBytes returns the bytes every signer signs: the domain-separated body hash.
func (t *Tx) SignBytes() ([]byte, error) {
	h, err := encoding.Hash(hash.DomainTx, &t.Body)
	if err != nil {
		return nil, err
	}
	return h[:], nil
}

// Sign appends the proof of key, which must be the next signer without a proof.
func (t *Tx) Sign(key crypto.PrivateKey) error {
	i := len(t.Proofs)
	if i >= len(t.Body.Signers) {
		return fmt.Errorf("%w: all %d signers have signed", ErrMalformed, i)
	}
	pub := key.Public()
	if want := t.Body.Signers[i].Key; want.Scheme != pub.Scheme || string(want.Key) != string(pub.Key) {
		return fmt.Errorf("%w: signer %d is %s, not this key (%s)", ErrMalformed, i, want.Address(), pub.Address())
	}
	msg, err := t.SignBytes()
	if err != nil {
		return err
	}
	sig, err := key.Sign(msg)
	if err != nil {
		return fmt.Errorf("sign as signer %d: %w", i, err)
	}
	t.Proofs = append(t.Proofs, Proof{Signature: sig})
	return nil
}

// ID returns the transaction's identifier: the hash of its whole encoding.
func (t *Tx) ID() (hash.Hash, error) {
	if t.raw != nil {
		return t.id, nil
	}
	return encoding.Hash(hash.DomainTxID, t)
}

// Encode returns the canonical encoding of t.
func (t *Tx) Encode() ([]byte, error) {
	if t.raw != nil {
		return t.raw, nil
	}
	return encoding.Marshal(t)
}

// MarshalCBOR returns a decoded transaction's own canonical bytes, so that a
// block of decoded transactions (a proposal built from the mempool, a block
// rebuilt from its compact form, a block saved to the store) encodes by copying
// them instead of re-encoding each through reflection.
func (t *Tx) MarshalCBOR() ([]byte, error) {
	if t.raw != nil {
		return t.raw, nil
	}
	return encoding.Marshal((*plainTx)(t))
}

// plainTx is Tx without its MarshalCBOR, for encoding the fields themselves.
type plainTx Tx

// Decode parses and checks the shape of an encoded transaction. It does not verify
// signatures (see VerifyProofs and crypto.VerifyBatch).
func Decode(b []byte) (*Tx, error) {
	if len(b) > MaxTxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxTxSize)
	}
	var t Tx
	if err := encoding.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("decode transaction: %w", err)
	}
	if err := t.CheckShape(); err != nil {
		return nil, err
	}
	t.raw, t.id = b, hash.Sum(hash.DomainTxID, b)
	return &t, nil
}

// Decoded returns t in the form Decode gives: t itself if it came from Decode,
// else the decoded copy of its encoding. A transaction built in the process
// (tx.New and Sign) carries no encoding, so each ID, block encoding and gossip
// of it would re-encode it; a node admits such transactions through Decoded,
// and they then cost what a transaction received over HTTP or gossip costs.
func Decoded(t *Tx) (*Tx, error) {
	if t.raw != nil {
		return t, nil
	}
	b, err := encoding.Marshal((*plainTx)(t))
	if err != nil {
		return nil, err
	}
	return Decode(b)
}

// CheckShape checks what can be checked without state or signatures.
func (t *Tx) CheckShape() error {
	n := len(t.Body.Signers)
	switch {
	case n == 0:
		return fmt.Errorf("%w: no signers", ErrMalformed)
	case n > MaxSigners:
		return fmt.Errorf("%w: %d signers, limit %d", ErrMalformed, n, MaxSigners)
	case len(t.Proofs) != n:
		return fmt.Errorf("%w: %d signers but %d proofs", ErrMalformed, n, len(t.Proofs))
	case t.Body.Type == "" || len(t.Body.Type) > MaxTypeLen:
		return fmt.Errorf("%w: transform type must be 1..%d bytes", ErrMalformed, MaxTypeLen)
	case t.Body.ChainID == "":
		return fmt.Errorf("%w: empty chain id", ErrMalformed)
	}
	seen := make(map[crypto.Address]bool, n)
	for i, s := range t.Body.Signers {
		a := s.Key.Address()
		if seen[a] {
			return fmt.Errorf("%w: signer %d (%s) appears twice", ErrMalformed, i, a)
		}
		seen[a] = true
	}
	return nil
}

// Items returns the signature checks of t for crypto.VerifyBatch, in signer order.
func (t *Tx) Items() ([]crypto.Item, error) {
	msg, err := t.SignBytes()
	if err != nil {
		return nil, err
	}
	items := make([]crypto.Item, len(t.Body.Signers))
	for i, s := range t.Body.Signers {
		var sig []byte
		if i < len(t.Proofs) {
			sig = t.Proofs[i].Signature
		}
		items[i] = crypto.Item{Pub: s.Key, Msg: msg, Sig: sig}
	}
	return items, nil
}

// VerifyProofs checks the signatures of many transactions in one batch spread over
// all cores. The result has one entry per transaction: nil, or why it failed.
func VerifyProofs(txs []*Tx) []error {
	out := make([]error, len(txs))
	var items []crypto.Item
	owner := make([]int, 0, len(txs))
	for i, t := range txs {
		if err := t.CheckShape(); err != nil {
			out[i] = err
			continue
		}
		its, err := t.Items()
		if err != nil {
			out[i] = err
			continue
		}
		for range its {
			owner = append(owner, i)
		}
		items = append(items, its...)
	}
	for j, err := range crypto.VerifyBatch(items) {
		if err != nil && out[owner[j]] == nil {
			out[owner[j]] = fmt.Errorf("%w: signer %s: %v", ErrBadProof, items[j].Pub.Address(), err)
		}
	}
	return out
}
