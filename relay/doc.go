// Package relay will hold the relay daemon: it follows chains, builds header and
// Merkle proofs, and submits them to the chains that need them.
package relay
