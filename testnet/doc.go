// Package testnet runs declarative multi-chain local testnets: a Topology
// (chains, validators, full nodes) becomes a directory holding an unencrypted
// test keyring and one home per node, each node a `plug node start` process on
// 127.0.0.1 (Up, Wait), watched and driven by Status, Down, Kill and Restart.
// The directory's Manifest (testnet.json) is what the client commands'
// --testnet flag reads. See docs/testnet.md.
package testnet
