package node

import (
	"context"
	"fmt"
	"time"

	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/encoding"
)

// MaxSyncBlocks is the most blocks one sync response carries.
const MaxSyncBlocks = 64

// syncRequest asks a peer for certified blocks from From (inclusive), or, with
// From 0, only for its height.
type syncRequest struct {
	From  uint64 `cbor:"1,keyasint"`
	Count uint32 `cbor:"2,keyasint"`
}

type syncResponse struct {
	Height uint64              `cbor:"1,keyasint"`
	Blocks []consensus.Decided `cbor:"2,keyasint"`
}

// serveSync answers block-sync requests from the block store.
func (n *Node) serveSync(_ context.Context, req []byte) ([]byte, error) {
	var r syncRequest
	if err := encoding.Unmarshal(req, &r); err != nil {
		return nil, err
	}
	resp := syncResponse{Height: n.store.Height()}
	if r.From > 0 {
		count := min(uint64(r.Count), MaxSyncBlocks)
		for h := r.From; h < r.From+count && h <= resp.Height; h++ {
			b, err := n.store.Block(h)
			if err != nil {
				return nil, fmt.Errorf("block %d: %w", h, err)
			}
			c, err := n.store.Certificate(h)
			if err != nil {
				return nil, fmt.Errorf("certificate %d: %w", h, err)
			}
			raw, err := b.Encode()
			if err != nil {
				return nil, err
			}
			resp.Blocks = append(resp.Blocks, consensus.Decided{Cert: *c, Block: raw})
		}
	}
	return encoding.Marshal(&resp)
}

// sync fetches certified blocks from peers until this node reaches target (or no
// peer has more), checking each certificate against the validator set it tracks
// and re-executing each block.
func (n *Node) sync(ctx context.Context, target uint64) {
	start := n.height()
	for n.height() < target {
		progressed := false
		for _, p := range n.host.Peers() {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			raw, err := n.host.Request(rctx, p, "sync", encoding.MustMarshal(&syncRequest{From: n.height() + 1, Count: MaxSyncBlocks}))
			cancel()
			if err != nil {
				continue
			}
			var resp syncResponse
			if err := encoding.Unmarshal(raw, &resp); err != nil {
				continue
			}
			if resp.Height > target {
				target = resp.Height
			}
			for _, d := range resp.Blocks {
				if err := n.applyCertified(ctx, d); err != nil {
					log.Warnw("sync: block refused", "peer", p, "height", d.Cert.Height, "err", err)
					break
				}
				progressed = true
			}
			if progressed {
				break
			}
		}
		if !progressed || ctx.Err() != nil {
			break
		}
	}
	if h := n.height(); h > start {
		log.Infow("caught up", "from", start, "to", h)
	}
}

// applyCertified checks and commits a block fetched by sync.
func (n *Node) applyCertified(ctx context.Context, d consensus.Decided) error {
	h := n.height() + 1
	if d.Cert.Height != h {
		return fmt.Errorf("block %d, want %d", d.Cert.Height, h)
	}
	if err := d.Cert.Verify(n.cfg.ChainID, n.currentSet()); err != nil {
		return err
	}
	b, err := block.Decode(d.Block)
	if err != nil {
		return err
	}
	if b.Header.Hash() != d.Cert.BlockID {
		return fmt.Errorf("%w: block does not match its certificate", block.ErrInvalid)
	}
	if _, err := n.app.Validate(h, d.Block); err != nil {
		return err
	}
	return n.commit(ctx, consensus.Decision{Height: h, Block: d.Block, Cert: d.Cert})
}
