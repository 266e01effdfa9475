// Package proof holds the Merkle proof formats every PLUG chain commits to: the
// sparse Merkle tree of state (membership and non-membership proofs) and the
// ordered-list tree of a block's transactions and receipts. chain/state builds
// its tree with these hashing rules and the light clients of spv verify proofs
// with them, so producer and verifier share one definition.
//
// It imports only chain/hash; the formats are specified in docs/state-tree.md.
package proof
