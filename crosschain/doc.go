// Package crosschain will hold the crosschain transaction, its on-chain transforms
// (prepare, decide, finish) and the coordinator rules of the multi-network two-phase commit.
package crosschain
