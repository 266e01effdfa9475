// Package shard composes several chains into one logical, sharded network: one
// namespace of accounts and assets spread over shard chains.
//
// A network is declared in one TOML file (Network): its shards, the placement rule
// that maps an account to its shard (a stable hash of the address by default, an
// explicit directory for pinned accounts) and the relays between shards. Placement
// is generational so that a shard can be added to a running network: accounts that
// already exist stay on the shard they were placed on, new accounts are placed over
// every shard, the new one included (Network.Candidates, Client.Home).
//
// A Client talks to the network as if it were one chain: a transfer between two
// accounts of one shard is an ordinary asset/transfer there; a transfer between
// shards becomes a crosschain transaction (an Out leg that escrows and burns on the
// payer's shard, which coordinates, and an In leg that mints on the payee's), which
// settles on both shards or neither. Aggregate queries (the supply of an asset, the
// balances of a set of accounts) map over the shards and reduce, with each shard's
// answer verified against its certified header.
//
// See docs/sharding.md.
package shard
