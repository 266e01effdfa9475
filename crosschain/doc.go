// Package crosschain is the on-chain half of PLUG's crosschain atomic settlement:
// the crosschain transaction (XTx), the light clients a chain keeps of the chains it
// trusts, and the transforms of the multi-network two-phase commit.
//
//   - lc/create, lc/update, lc/misbehaviour keep spv light clients at "lc/<chain>".
//   - xchain/prepare, on each leg's chain, escrows the leg or records a provable
//     refusal at "xchain/leg/<id>/<leg>".
//   - xchain/decide, on the coordinator chain, records exactly one decision at
//     "xchain/decision/<id>" from light-client proofs of the leg records (commit when
//     every leg is proven prepared by the deadline, abort on a proven refusal or
//     once the deadline has passed).
//   - xchain/finish, on each leg's chain, completes or refunds the leg given a proof
//     of the decision.
//   - xchain/set-params, by the admin, sets the chain's Params (the max lock) at
//     "xchain/params".
//
// Prepare and decide keep each XTx's terms at "xchain/xtx/<id>" and hold its
// reference for each paying party at "xchain/ref/<party>/<hash>": one XTx per
// party and reference escrows on a chain, and one commits on a coordinator. A
// chain prepares only what it could see settled: a deadline within its max lock,
// and active light clients of the chains the trade needs there.
//
// Every step is idempotent: a replayed or duplicated step fails with a typed error
// and changes nothing. The protocol, its keys and its failure cases are specified in
// docs/crosschain.md.
package crosschain
