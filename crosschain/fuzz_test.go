package crosschain_test

import (
	"testing"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/crosschain"
)

// FuzzTransforms feeds arbitrary payloads to the crosschain transforms' decoders
// and to what runs before any state is read (Keys, the XTx shape check with its
// reference, a batch's carried signatures and shape check, set-params' value
// check): bytes
// either fail to decode or give a transform whose key declaration and checks
// never panic, whatever its legs, kinds and indexes.
func FuzzTransforms(f *testing.F) {
	x := crosschain.XTx{Coordinator: "alpha", Deadline: 1, Legs: []crosschain.Leg{
		{Chain: "alpha", Asset: "USD", From: addr(alice), To: addr(bob), Amount: 5, Kind: crosschain.Out},
		{Chain: "beta", Asset: "USD", From: addr(alice), To: addr(bob), Amount: 5, Kind: crosschain.In},
	}, Ref: "T-1"}
	s, err := crosschain.NewSigned(x, alice)
	if err != nil {
		f.Fatal(err)
	}
	types := []string{crosschain.TypePrepare, crosschain.TypeDecide, crosschain.TypeFinish, crosschain.TypeBatch, crosschain.TypeSetParams}
	batch := &crosschain.Batch{Steps: []crosschain.Step{
		crosschain.StepOf(&crosschain.Prepare{Tx: *s, Leg: 1}),
		crosschain.StepOf(&crosschain.Decide{XTx: x, Sigs: s.Sigs}),
		{Finish: &crosschain.Finish{XTx: x, Leg: 7}, Decide: &crosschain.Decide{XTx: x}},
	}}
	params := &crosschain.SetParams{Params: crosschain.DefaultParams()}
	for i, tr := range []any{&crosschain.Prepare{Tx: *s, Leg: 1}, &crosschain.Decide{XTx: x}, &crosschain.Finish{XTx: x, Leg: 7}, batch, params} {
		f.Add(uint8(i), encoding.MustMarshal(tr))
	}
	reg := app.Registry()
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		typ := types[int(which)%len(types)]
		tr, err := reg.Decode(typ, payload)
		if err != nil {
			return
		}
		ctx := &transform.Context{ChainID: "beta", Height: 2, Time: 1}
		tr.Keys(ctx)
		tr.Authorizations(ctx)
		switch v := tr.(type) {
		case *crosschain.Batch:
			v.CarriedSignatures()
			_ = v.Verify(ctx, nil) // the shape: no state read
			return
		case *crosschain.SetParams:
			_ = v.Verify(ctx, nil) // the values: no state read
			return
		}
		var xt *crosschain.XTx
		switch v := tr.(type) {
		case *crosschain.Prepare:
			xt = &v.Tx.XTx
			_ = v.Tx.VerifySigs()
		case *crosschain.Decide:
			xt = &v.XTx
		case *crosschain.Finish:
			xt = &v.XTx
		}
		if err := xt.Check(); err == nil {
			_ = xt.ID()
			_ = xt.Parties()
		}
	})
}
