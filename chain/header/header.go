// Package header holds the block header: what validators sign and light clients
// follow. It depends only on hashing, encoding and addresses, so spv and other
// light clients can import it alone.
package header

import (
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
)

// Header is a block's summary, signed by validators and followed by light clients.
type Header struct {
	ChainID string `cbor:"1,keyasint" json:"chain_id"`
	Height  uint64 `cbor:"2,keyasint" json:"height"`
	// Time is the agreed block time, Unix milliseconds; it never goes backwards.
	Time     int64     `cbor:"3,keyasint" json:"time"`
	PrevHash hash.Hash `cbor:"4,keyasint" json:"prev_hash"`
	// TxRoot is the list Merkle root of the transaction IDs.
	TxRoot hash.Hash `cbor:"5,keyasint" json:"tx_root"`
	// ReceiptsRoot is the list Merkle root of the receipts.
	ReceiptsRoot hash.Hash `cbor:"6,keyasint" json:"receipts_root"`
	// StateRoot is the state tree's root after this block's transactions.
	StateRoot hash.Hash `cbor:"7,keyasint" json:"state_root"`
	// ValidatorsHash is the set that signs this block.
	ValidatorsHash hash.Hash `cbor:"8,keyasint" json:"validators_hash"`
	// NextValidatorsHash is the set that signs the next block (this block's
	// validator-set changes are in it).
	NextValidatorsHash hash.Hash `cbor:"9,keyasint" json:"next_validators_hash"`
	// Proposer is the address of the validator that proposed the block.
	Proposer crypto.Address `cbor:"10,keyasint" json:"proposer"`
}

// Hash returns the header's domain-separated hash, the block's identity.
func (h *Header) Hash() hash.Hash { return encoding.MustHash(hash.DomainHeader, h) }
