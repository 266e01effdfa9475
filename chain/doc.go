// Package chain is the root of one PLUG chain: encoding, crypto, authenticated state,
// transforms, transactions, blocks and execution live in its sub-packages.
//
// chain/ is the bottom layer: none of its packages imports crosschain, spv, relay,
// settlement, testnet or app (`go list -deps ./chain/...` shows it). What a layer
// above contributes to a chain reaches it as values: the node executes the
// registry and models its caller passes, and genesis files carry the sections
// registered with genesis.RegisterSection.
package chain
