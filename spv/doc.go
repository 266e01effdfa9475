// Package spv is PLUG's light-client verification. ClientState follows a chain's
// headers one height at a time, each proven final by a commit certificate of the
// validator set the previous header named as next, and freezes on evidence of a
// fork. Against the roots of verified headers it checks Merkle proofs (chain/proof) of state
// (membership and non-membership) and of ordered lists (transactions, receipts).
//
// It imports no networking and no storage, so an embedded device, a relay or another
// chain's on-chain light client can import it alone. The trust model and formats are
// specified in docs/light-client.md, the proof formats in docs/state-tree.md.
package spv
