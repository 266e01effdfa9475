// Package testnet will hold declarative multi-chain local testnets: topology, process
// supervision and fault injection.
package testnet
