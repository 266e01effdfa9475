package crosschain

import "github.com/plugchain/plug/chain/transform"

// xtxTerms are the index terms of a step on x: the XTx's ID and, for each leg
// on this chain (ctx.ChainID), its asset and both parties.
func xtxTerms(ctx *transform.Context, x *XTx, xid *xtxID) []transform.Term {
	out := []transform.Term{{Kind: transform.TermXTx, Value: xid.of(x).String()}}
	for _, l := range x.Legs {
		if ctx != nil && l.Chain != ctx.ChainID {
			continue
		}
		out = append(out, transform.Term{Kind: transform.TermAsset, Value: l.Asset},
			transform.AccountTerm(l.From), transform.AccountTerm(l.To))
	}
	return out
}

// IndexTerms implements transform.Indexed.
func (t *Prepare) IndexTerms(ctx *transform.Context) []transform.Term {
	return xtxTerms(ctx, &t.Tx.XTx, &t.xid)
}

// IndexTerms implements transform.Indexed.
func (t *Decide) IndexTerms(ctx *transform.Context) []transform.Term {
	return xtxTerms(ctx, &t.XTx, &t.xid)
}

// IndexTerms implements transform.Indexed.
func (t *Finish) IndexTerms(ctx *transform.Context) []transform.Term {
	return xtxTerms(ctx, &t.XTx, &t.xid)
}

// IndexTerms implements transform.Indexed: the terms of every step.
func (t *Batch) IndexTerms(ctx *transform.Context) []transform.Term {
	var out []transform.Term
	for _, s := range t.Steps {
		switch {
		case s.Prepare != nil:
			out = append(out, s.Prepare.IndexTerms(ctx)...)
		case s.Decide != nil:
			out = append(out, s.Decide.IndexTerms(ctx)...)
		case s.Finish != nil:
			out = append(out, s.Finish.IndexTerms(ctx)...)
		}
	}
	return out
}

// StepXTxs returns the XTxs a crosschain step names: a prepare's, decide's or
// finish's, each step's of a batch; nil for any other transform. A reader of
// a chain's history (plug xchain list) finds a party's trades through it.
func StepXTxs(tr transform.Transform) []*XTx {
	switch t := tr.(type) {
	case *Prepare:
		return []*XTx{&t.Tx.XTx}
	case *Decide:
		return []*XTx{&t.XTx}
	case *Finish:
		return []*XTx{&t.XTx}
	case *Batch:
		var out []*XTx
		for _, s := range t.Steps {
			switch {
			case s.Prepare != nil:
				out = append(out, &s.Prepare.Tx.XTx)
			case s.Decide != nil:
				out = append(out, &s.Decide.XTx)
			case s.Finish != nil:
				out = append(out, &s.Finish.XTx)
			}
		}
		return out
	}
	return nil
}
