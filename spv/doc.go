// Package spv verifies what a light client is given: Merkle proofs of state
// (membership and non-membership) and of ordered lists (transactions, receipts)
// against a root it trusts. Header and quorum-certificate verification join it with
// the crosschain work.
//
// It imports no networking and no storage, so an embedded device, a relay or another
// chain's on-chain light client can import it alone. The proof formats are specified
// in docs/state-tree.md.
package spv
