package node

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/mapreduce"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
)

// DefaultMaxQueries is how many map-reduce queries a node runs at once when
// Config.MaxQueries is 0; more are refused busy, so queries cannot take every
// core from consensus.
const DefaultMaxQueries = 2

var _ gateway.Querier = (*Node)(nil)

// querySlots is the semaphore of running queries, made on first use.
type querySlots struct {
	once sync.Once
	sem  chan struct{}
}

func (n *Node) querySem() chan struct{} {
	n.queries.once.Do(func() {
		max := n.cfg.MaxQueries
		if max <= 0 {
			max = DefaultMaxQueries
		}
		n.queries.sem = make(chan struct{}, max)
	})
	return n.queries.sem
}

// Query implements gateway.Querier: it runs req's script over the committed
// transactions its filter selects, read block by block from the store
// (blockFeed), within req's limits lowered to Config.QueryLimits.
func (n *Node) Query(ctx context.Context, req *gateway.QueryRequest) (*gateway.QueryResponse, error) {
	// A script that does not compile does not take a slot.
	if _, err := mapreduce.Compile(req.Script); err != nil {
		return nil, err
	}
	f := req.Filter
	if f.Account != "" {
		if _, err := crypto.ParseAddress(f.Account); err != nil {
			return nil, fmt.Errorf("%w: account %q: %v", gateway.ErrInvalid, f.Account, err)
		}
	}
	top := n.height()
	if f.From == 0 {
		f.From = 1
	}
	if f.To == 0 || f.To > top {
		f.To = top
	}
	sem := n.querySem()
	select {
	case sem <- struct{}{}:
		defer func() { <-sem }()
	default:
		return nil, fmt.Errorf("%w: this node runs %d queries already; retry later", ErrBusy, cap(sem))
	}
	res, err := mapreduce.Run(ctx, req.Script, blockFeed{n}, f, req.Limits.Limits().Cap(n.cfg.QueryLimits))
	if err != nil {
		return nil, err
	}
	return &gateway.QueryResponse{Result: *res, From: f.From, To: f.To}, nil
}

// QueryTx is a transaction as a query's map sees it: the JSON of GET
// /v1/tx/{id}, plus its block's time and its transform decoded.
type QueryTx struct {
	gateway.TxResponse
	// Time is the block's time, Unix milliseconds; TimeRFC3339 the same in UTC.
	Time        int64  `json:"time"`
	TimeRFC3339 string `json:"time_rfc3339"`
	// Transform is the payload decoded, in its JSON form (asset/transfer:
	// {"asset", "from", "to", "amount"}); absent if the type is unknown here.
	Transform json.RawMessage `json:"transform,omitempty"`
}

// blockFeed feeds a query from the block store, a block at a time: every
// block of the range. With a type, account or asset to filter by and a
// transaction index (index.db), Scan reads the index instead and visits only
// the transactions it names (a superset: the same checks then keep exactly
// what the block scan keeps).
type blockFeed struct{ n *Node }

// Scan implements mapreduce.Feed.
func (bf blockFeed) Scan(ctx context.Context, f mapreduce.Filter, fn func([]byte) error) error {
	n := bf.n
	m := queryMatch{f: f}
	if f.Account != "" {
		a, err := crypto.ParseAddress(f.Account)
		if err != nil {
			return fmt.Errorf("%w: account %q: %v", gateway.ErrInvalid, f.Account, err)
		}
		m.account = a
	}
	from := max(f.From, 1)
	// The index may lag the block store by the blocks its writer has not
	// reached yet, and may have pruned old heights: those are scanned.
	if terms := queryTerms(f, m.account); len(terms) > 0 && n.index != nil && n.index.Low() <= from && n.index.Height() >= from {
		top := min(f.To, n.index.Height())
		var ferr error
		err := n.ScanTxs(ctx, TxFilter{Terms: terms, From: from, To: top}, func(hit TxHit) bool {
			r := hit.Result
			ferr = n.feedTx(m, r.Height, int(r.Index), r.Tx, exec.Receipt{Code: r.Code, Error: r.Error, Skipped: r.Skipped}, hit.BlockTime, fn)
			return ferr == nil && ctx.Err() == nil
		})
		if ferr != nil {
			return ferr
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		from = top + 1
	}
	for h := from; h <= f.To; h++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := n.store.Block(h)
		if err != nil {
			return n.notFound("block", h, err)
		}
		if len(b.Txs) == 0 {
			continue
		}
		rs, err := n.store.Receipts(h)
		if err != nil {
			return n.notFound("receipts of block", h, err)
		}
		if len(rs) != len(b.Txs) {
			return fmt.Errorf("block %d has %d receipts for %d transactions", h, len(rs), len(b.Txs))
		}
		for i, t := range b.Txs {
			if err := n.feedTx(m, h, i, t, rs[i], b.Header.Time, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// queryMatch is a query's filter, its account parsed.
type queryMatch struct {
	f       mapreduce.Filter
	account crypto.Address
}

// queryTerms are the index terms of f: each transaction f keeps carries them
// (its type, its signer, the asset its transform names).
func queryTerms(f mapreduce.Filter, account crypto.Address) []transform.Term {
	var terms []transform.Term
	if f.Type != "" {
		terms = append(terms, transform.Term{Kind: transform.TermType, Value: f.Type})
	}
	if f.Account != "" {
		terms = append(terms, transform.AccountTerm(account))
	}
	if f.Asset != "" {
		terms = append(terms, transform.Term{Kind: transform.TermAsset, Value: f.Asset})
	}
	return terms
}

// feedTx hands t, the i-th transaction of block h, to fn as a query sees it
// (QueryTx's JSON) when m keeps it.
func (n *Node) feedTx(m queryMatch, h uint64, i int, t *tx.Tx, rc exec.Receipt, blockTime int64, fn func([]byte) error) error {
	f := m.f
	if f.Type != "" && t.Body.Type != f.Type {
		return nil
	}
	if f.Account != "" && !signedBy(t.Body.Signers, m.account) {
		return nil
	}
	id, err := t.ID()
	if err != nil {
		return err
	}
	qt := QueryTx{TxResponse: gateway.TxResponse{TxResult: &gateway.TxResult{ID: id, Height: h, Index: uint32(i),
		Code: rc.Code, Error: rc.Error, Tx: t, Skipped: rc.Skipped}, Status: rc.Code.String()},
		Time: blockTime, TimeRFC3339: time.UnixMilli(blockTime).UTC().Format(time.RFC3339Nano)}
	if tr, err := n.cfg.Registry.Decode(t.Body.Type, t.Body.Payload); err == nil {
		if qt.Transform, err = json.Marshal(tr); err != nil {
			qt.Transform = nil
		}
	}
	if f.Asset != "" {
		var a struct {
			Asset string `json:"asset"`
		}
		if qt.Transform == nil || json.Unmarshal(qt.Transform, &a) != nil || a.Asset != f.Asset {
			return nil
		}
	}
	raw, err := json.Marshal(qt)
	if err != nil {
		return err
	}
	return fn(raw)
}

func signedBy(signers []tx.Signer, a crypto.Address) bool {
	for _, s := range signers {
		if s.Key.Address() == a {
			return true
		}
	}
	return false
}
