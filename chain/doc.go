// Package chain is the root of one PLUG chain: encoding, crypto, authenticated state,
// transforms, transactions, blocks and execution live in its sub-packages.
package chain
