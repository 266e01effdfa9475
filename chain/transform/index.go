package transform

import "github.com/plugchain/plug/chain/crypto"

// Kinds of index terms. The node indexes every committed transaction under
// TermType (its transform type) and TermAccount (each of its signers); a
// transform that implements Indexed adds the terms it names.
const (
	// TermAccount: an account the transaction signed or names (hex address).
	TermAccount = "account"
	// TermAsset: an asset the transaction touches (its name).
	TermAsset = "asset"
	// TermType: the transaction's transform type.
	TermType = "type"
	// TermXTx: a crosschain transaction the transaction advances (its ID, hex).
	TermXTx = "xtx"
)

// Term is one (kind, value) pair a transaction is indexed under, e.g.
// {TermAccount, "3f…"} or {TermAsset, "usd"}.
type Term struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// AccountTerm is the TermAccount term of a.
func AccountTerm(a crypto.Address) Term { return Term{Kind: TermAccount, Value: a.String()} }

// Indexed is implemented by transforms that name accounts, assets or other
// objects the node should index their transactions under, besides the signers
// and the type every transaction is indexed under. IndexTerms is derived from
// the transform's fields and the context alone (never from state); it may
// return duplicates, which the index drops. It runs after the block committed,
// so it must not fail: a transform that cannot name a term leaves it out.
type Indexed interface {
	IndexTerms(ctx *Context) []Term
}
