package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/index"
	"github.com/plugchain/plug/chain/proof"
	"github.com/plugchain/plug/chain/store"
	"github.com/plugchain/plug/chain/transform"
)

// IndexFile is the transaction index's file in a node home.
const IndexFile = IndexDB

// indexBatch is how many blocks a catch-up or a rebuild indexes per write.
const indexBatch = 256

// indexGather is how long the index writer lets committed heights gather
// before it writes them.
const indexGather = 500 * time.Millisecond

// openIndex opens index.db and catches it up with the block store (after a
// crash between the block's commit and its indexing, or a start with the
// index turned off). An index ahead of the block store (chain.db was resynced
// or restored) is rebuilt.
func (n *Node) openIndex() error {
	if n.cfg.NoIndex {
		return nil
	}
	path := filepath.Join(n.cfg.Home, IndexFile)
	x, err := index.Open(path)
	if err != nil {
		return fmt.Errorf("open the transaction index: %w (delete %s, or run plug node reindex)", err, path)
	}
	if x.Height() > n.store.Height() {
		log.Warnw("transaction index is ahead of the block store; rebuilding it", "index", x.Height(), "store", n.store.Height())
		x.Close()
		if err := os.Remove(path); err != nil {
			return err
		}
		if x, err = index.Open(path); err != nil {
			return err
		}
	}
	n.index = x
	if behind := n.store.Height() - x.Height(); behind > 0 {
		log.Infow("catching up the transaction index", "from", x.Height()+1, "to", n.store.Height())
	}
	if err := n.indexTo(n.store.Height()); err != nil {
		return fmt.Errorf("catch up the transaction index: %w (run plug node reindex)", err)
	}
	return nil
}

// indexLater hands height h, just committed, to the indexer goroutine
// (runIndexer) and returns at once: the index is derived data, and writing it
// inside the commit would add its encoding and its fsync to every height. The
// indexer coalesces the heights that arrive while it writes into one write.
func (n *Node) indexLater(h uint64) {
	if n.index == nil {
		return
	}
	n.indexTarget.Store(h)
	select {
	case n.indexWake <- struct{}{}:
	default:
	}
}

// runIndexer indexes the committed blocks handed to indexLater until ctx ends.
func (n *Node) runIndexer(ctx context.Context) {
	defer close(n.indexDone)
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.indexWake:
		}
		// Let a few heights gather: one write of several blocks costs less
		// than one per block, and under load the cores go to consensus first.
		select {
		case <-ctx.Done():
			return
		case <-time.After(indexGather):
		}
		_ = n.indexTo(n.indexTarget.Load())
	}
}

// indexTo indexes the stored blocks up to height h and prunes what
// IndexMaxHeights no longer keeps. A failure is logged (the index is derived
// data; it catches up at the next block or start) and returned.
func (n *Node) indexTo(h uint64) error {
	if n.index == nil {
		return nil
	}
	err := indexBlocks(n.index, n.store, n.cfg.Registry, n.cfg.ChainID, n.cfg.IndexMaxHeights, h, nil)
	if err != nil {
		log.Errorw("index committed blocks", "to", h, "err", err)
	}
	return err
}

// indexBlocks adds the stored blocks after x.Height() up to h to x, then
// prunes all but the last keep heights (0: none pruned).
func indexBlocks(x *index.Index, st *store.Store, reg *transform.Registry, chainID string, keep, h uint64, progress func(uint64)) error {
	from := x.Height() + 1
	if x.Height() == 0 && keep > 0 && h > keep {
		from = h - keep + 1
	}
	var batch []*index.Block
	for height := from; height <= h; height++ {
		b, err := st.Block(height)
		if err != nil {
			return err
		}
		batch = append(batch, indexOf(reg, chainID, b))
		if len(batch) == indexBatch || height == h {
			if err := x.Add(batch...); err != nil {
				return err
			}
			batch = batch[:0]
			if progress != nil {
				progress(height)
			}
		}
	}
	for keep > 0 && x.Height()-x.Low()+1 > keep {
		b, err := st.Block(x.Low())
		if err != nil {
			return err
		}
		if err := x.Prune(indexOf(reg, chainID, b)); err != nil {
			return err
		}
	}
	return nil
}

// indexOf is the index record of b: each transaction's terms.
func indexOf(reg *transform.Registry, chainID string, b *block.Block) *index.Block {
	out := &index.Block{Height: b.Header.Height, Time: b.Header.Time, Txs: make([][]transform.Term, len(b.Txs))}
	for i, t := range b.Txs {
		signers := make([]crypto.Address, len(t.Body.Signers))
		for j, s := range t.Body.Signers {
			signers[j] = s.Key.Address()
		}
		ctx := &transform.Context{ChainID: chainID, Height: b.Header.Height, Time: b.Header.Time, Signers: signers}
		out.Txs[i] = index.TermsOf(reg, ctx, t)
	}
	return out
}

// Reindex rebuilds HOME/index.db from the block store of a stopped node:
// it deletes the index and indexes every stored block again (the last
// keep heights only, when keep > 0), calling progress with each height done.
// It fails with store.ErrLocked while the node runs.
func Reindex(home string, reg *transform.Registry, chainID string, keep uint64, progress func(done, total uint64)) error {
	st, err := store.Open(filepath.Join(home, "chain.db"), store.WithReadOnly(), store.WithOpenTimeout(time.Second))
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return fmt.Errorf("%w: the node is running; stop it first", err)
		}
		return err
	}
	defer st.Close()
	path := filepath.Join(home, IndexFile)
	tmp := path + ".new"
	_ = os.Remove(tmp)
	x, err := index.Open(tmp, index.WithNoSync())
	if err != nil {
		return err
	}
	total := st.Height()
	var report func(uint64)
	if progress != nil {
		report = func(h uint64) { progress(h, total) }
	}
	if err := indexBlocks(x, st, reg, chainID, keep, total, report); err != nil {
		x.Close()
		return err
	}
	if err := x.Sync(); err != nil {
		x.Close()
		return err
	}
	if err := x.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// TxFilter selects committed transactions for ScanTxs: gateway.TxQuery without
// its limit.
type TxFilter = gateway.TxQuery

// TxHit is one transaction ScanTxs found.
type TxHit struct {
	Result    *gateway.TxResult
	BlockTime int64
	BlockHash hash.Hash
	// Proof proves Result.ID at Result.Index of the block's TxRoot (with f.Prove).
	Proof *proof.ListProof
}

// ScanTxs calls fn with each committed transaction f selects, in height
// order, until fn returns false: the Go API of the transaction index (GET
// /v1/txs pages through it). f.Limit is ignored. It fails with ErrNotFound
// when the node keeps no index.
func (n *Node) ScanTxs(ctx context.Context, f TxFilter, fn func(TxHit) bool) error {
	if n.index == nil {
		return fmt.Errorf("%w: this node keeps no transaction index (storage.index is off)", ErrNotFound)
	}
	filter := index.Filter{Terms: f.Terms, From: f.From, To: f.To, FromTime: f.FromTime, ToTime: f.ToTime}
	// The index may run a block ahead of the committed state (it is written
	// just after the state commits); never show a block the node has not
	// announced as committed.
	if top := n.height(); filter.To == 0 || filter.To > top {
		filter.To = top
		if top == 0 {
			return nil
		}
	}
	if f.After != nil {
		filter.After = &index.Pos{Height: f.After.Height, Index: f.After.Index}
	}
	var (
		cur     *blockView
		errOut  error
		stopped bool
	)
	// The index writer runs behind the commits: what it has not reached yet
	// is read from the block store below, so a query sees every committed block.
	indexed := n.index.Height()
	scanTo := filter.To
	filter.To = min(filter.To, indexed)
	if filter.To >= max(filter.From, 1) {
		err := n.index.Scan(filter, func(p index.Pos, t int64) bool {
			if ctx.Err() != nil {
				errOut = ctx.Err()
				return false
			}
			if cur == nil || cur.height != p.Height {
				if cur, errOut = n.viewBlock(p.Height); errOut != nil {
					return false
				}
			}
			hit, err := cur.hit(int(p.Index), t, f.Prove)
			if err != nil {
				errOut = err
				return false
			}
			if !fn(hit) {
				stopped = true
				return false
			}
			return true
		})
		if err != nil {
			return err
		}
	}
	if errOut != nil || stopped {
		return errOut
	}
	return n.scanUnindexed(ctx, f, max(indexed+1, f.From, 1), scanTo, fn)
}

// scanUnindexed is ScanTxs over the committed blocks from..to that the index
// writer has not reached: each transaction's terms worked out as the writer
// will (indexOf), matched against f.
func (n *Node) scanUnindexed(ctx context.Context, f TxFilter, from, to uint64, fn func(TxHit) bool) error {
	for h := from; h <= to; h++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		v, err := n.viewBlock(h)
		if err != nil {
			return err
		}
		t := v.b.Header.Time
		if (f.FromTime != 0 && t < f.FromTime) || (f.ToTime != 0 && t > f.ToTime) {
			continue
		}
		terms := indexOf(n.cfg.Registry, n.cfg.ChainID, v.b).Txs
		for i := range v.b.Txs {
			if f.After != nil && (h < f.After.Height || h == f.After.Height && uint32(i) <= f.After.Index) {
				continue
			}
			if !hasTerms(terms[i], f.Terms) {
				continue
			}
			hit, err := v.hit(i, t, f.Prove)
			if err != nil {
				return err
			}
			if !fn(hit) {
				return nil
			}
		}
	}
	return nil
}

// hasTerms reports whether a transaction with terms have carries every term
// of want (hex values compare without case, as the index stores them).
func hasTerms(have, want []transform.Term) bool {
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h transform.Term) bool {
			return h.Kind == w.Kind && (h.Value == w.Value || (w.Kind == transform.TermAccount || w.Kind == transform.TermXTx) && strings.EqualFold(h.Value, w.Value))
		}) {
			return false
		}
	}
	return true
}

// blockView is a block read once for the hits of a scan in it.
type blockView struct {
	height uint64
	b      *block.Block
	hash   hash.Hash
	ids    []hash.Hash
	rcpts  []*gateway.TxResult
}

func (n *Node) viewBlock(h uint64) (*blockView, error) {
	b, err := n.store.Block(h)
	if err != nil {
		return nil, err
	}
	rs, err := n.store.Receipts(h)
	if err != nil {
		return nil, err
	}
	if len(rs) != len(b.Txs) {
		return nil, fmt.Errorf("block %d: %d receipts for %d transactions", h, len(rs), len(b.Txs))
	}
	v := &blockView{height: h, b: b, hash: b.Header.Hash(), ids: make([]hash.Hash, len(b.Txs)), rcpts: make([]*gateway.TxResult, len(b.Txs))}
	for i, t := range b.Txs {
		if v.ids[i], err = t.ID(); err != nil {
			return nil, err
		}
		v.rcpts[i] = &gateway.TxResult{ID: v.ids[i], Height: h, Index: uint32(i), Code: rs[i].Code, Error: rs[i].Error, Tx: t, Skipped: rs[i].Skipped}
	}
	return v, nil
}

func (v *blockView) hit(i int, t int64, prove bool) (TxHit, error) {
	if i >= len(v.b.Txs) {
		return TxHit{}, fmt.Errorf("%w: index names transaction %d of block %d, which has %d", index.ErrCorrupt, i, v.height, len(v.b.Txs))
	}
	h := TxHit{Result: v.rcpts[i], BlockTime: t, BlockHash: v.hash}
	if prove {
		p, err := proof.NewListProof(v.ids, i)
		if err != nil {
			return TxHit{}, err
		}
		h.Proof = p
	}
	return h, nil
}

// QueryTxs implements gateway.TxIndexer: one page of ScanTxs.
func (n *Node) QueryTxs(ctx context.Context, q gateway.TxQuery) (*gateway.TxPage, error) {
	if n.index == nil {
		return nil, fmt.Errorf("%w: this node keeps no transaction index (storage.index is off)", ErrNotFound)
	}
	limit := q.Limit
	if limit <= 0 || limit > gateway.MaxTxsLimit {
		limit = gateway.DefaultTxsLimit
	}
	// Blocks the index writer has not reached are searched in the block store
	// (ScanTxs): the page covers every committed height from IndexedFrom.
	page := &gateway.TxPage{Txs: []gateway.TxItem{}, IndexedFrom: n.index.Low(), IndexedTo: n.height()}
	more := false
	err := n.ScanTxs(ctx, q, func(h TxHit) bool {
		if len(page.Txs) == limit {
			more = true
			return false
		}
		page.Txs = append(page.Txs, gateway.TxItem{
			TxResponse: gateway.TxResponse{TxResult: h.Result, Status: h.Result.Code.String()},
			BlockTime:  h.BlockTime, BlockHash: h.BlockHash, Proof: h.Proof,
		})
		return true
	})
	if err != nil {
		return nil, err
	}
	if more {
		last := page.Txs[len(page.Txs)-1]
		page.Next = gateway.TxPos{Height: last.Height, Index: last.Index}.Cursor()
	}
	return page, nil
}
