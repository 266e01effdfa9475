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
//
// # The engine
//
// Off chain, one pure function says what an XTx needs next: PlanOf. A driver
// (the relay, settlement.Query, the simulations) fills an Observation with what
// it knows — the signed XTx, whether the signatures verify, the coordinator's and
// each leg chain's latest height and block time, the heights each light client
// can prove, and the records it has read — and PlanOf returns a Plan: the
// lifecycle Status (pending, prepared, committed, aborted) and Final, the Reads
// still missing (ReadRequest: which key, on which chain, at which height, proven
// or not), the steps due now (Action: a prepare, decide or finish, its chain, its
// transaction body and a stable Key for retry bookkeeping), and the light clients
// a step waits for (Wait). The driver makes the reads, records the answers with
// Observation.Fill, and calls PlanOf again until no read is left; then it submits
// the steps. The engine reads nothing, keeps no state and has no clock: the
// coordinator's block time is its only time, and when to retry a step is the
// driver's policy. It never plans a finish before the decision is read and found,
// a remote finish without a proof of the decision at or above the decision's
// height, or a decide with a proof it was not given.
package crosschain
