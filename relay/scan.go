package relay

import (
	"context"

	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/crosschain"
)

// scan reads the chain's new blocks and learns the XTxs of their xchain/prepare
// transactions, saving them with the scanned height.
func (r *Relay) scan(ctx context.Context, cs *chainState) error {
	done, err := r.db.scanned()
	if err != nil {
		return err
	}
	from := done[cs.id] + 1
	to := min(cs.height, from+maxScanPerPass-1)
	if from > to {
		return nil
	}
	learned := map[hash.Hash]*xtxRecord{}
	last := from - 1
	for h := from; h <= to; h++ {
		br, err := cs.c.Block(ctx, h)
		if err != nil {
			if len(learned) > 0 || last >= from {
				break
			}
			return err
		}
		var steps []transform.Transform
		for _, t := range br.Block.Txs {
			switch t.Body.Type {
			case crosschain.TypePrepare, crosschain.TypeDecide, crosschain.TypeFinish, crosschain.TypeBatch:
			default:
				continue
			}
			// A committed payload decoded before it executed; the relay only
			// reads it, so the lax decoder does (no canonical re-encoding).
			tr, err := r.reg.New(t.Body.Type)
			if err != nil || encoding.UnmarshalLax(t.Body.Payload, tr) != nil {
				continue
			}
			if b, ok := tr.(*crosschain.Batch); ok {
				for i := range b.Steps {
					if st, _ := b.Steps[i].Transform(); st != nil {
						steps = append(steps, st)
					}
				}
				continue
			}
			steps = append(steps, tr)
		}
		for _, tr := range steps {
			var xt *crosschain.XTx
			var signed *crosschain.Signed
			switch p := tr.(type) {
			case *crosschain.Prepare:
				xt, signed = &p.Tx.XTx, &p.Tx
			case *crosschain.Decide:
				xt = &p.XTx
			case *crosschain.Finish:
				xt = &p.XTx
			}
			if xt == nil || xt.Check() != nil {
				continue
			}
			id := xt.ID()
			r.mu.Lock()
			_, known := r.xtxs[id]
			switch {
			case known:
				r.dirty[id] = true
			case signed != nil:
				// Only a prepare carries the parties' signatures, which a relay
				// needs to prepare the legs nobody prepared yet.
				rec := &xtxRecord{Signed: *signed, Status: crosschain.Pending, Done: make([]bool, len(xt.Legs)), Learned: r.now().UnixMilli()}
				r.xtxs[id] = rec
				r.dirty[id] = true
				learned[id] = rec
				log.Debugw("learned xtx", "id", id.Short(), "chain", cs.id, "height", h)
			}
			r.mu.Unlock()
		}
		last = h
	}
	r.mu.Lock()
	r.m.Pending.Set(float64(r.pending()))
	r.mu.Unlock()
	return r.db.save(cs.id, last, learned)
}
