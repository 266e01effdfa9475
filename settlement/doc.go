// Package settlement builds delivery-versus-payment (DvP) and payment-versus-payment
// (PvP) trades, and batches of them, on top of package crosschain.
//
//   - A Trade is a set of transfers (legs) between parties on any number of chains;
//     DvP and PvP build the usual two-leg shapes, ParseLeg reads "CHAIN:ASSET:AMOUNT".
//   - Trade.XTx turns a trade into the crosschain transaction every party signs.
//   - Instructions are each party's own view of a trade; Match pairs two that agree
//     into one XTx, identical for both sides, so both sign the same ID.
//   - Net reduces a batch of trades to the net transfers per chain and asset, so the
//     batch settles as one all-or-nothing XTx (the CLS idea, across ledgers).
//   - Query reads the leg and decision records of an XTx from each chain and
//     reports its lifecycle Status.
//
// See docs/settlement.md.
package settlement
