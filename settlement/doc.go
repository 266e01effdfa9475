// Package settlement will hold delivery-vs-payment and payment-vs-payment trades and
// batches built on crosschain: instructions, matching, lifecycle and netting.
package settlement
