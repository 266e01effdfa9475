package gateway

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/proof"
	"github.com/plugchain/plug/chain/transform"
)

// MaxTxsLimit bounds the limit of GET /v1/txs; DefaultTxsLimit is used when none
// is given.
const (
	MaxTxsLimit     = 1000
	DefaultTxsLimit = 100
)

// TxQuery is a query of the transaction index (GET /v1/txs): the transactions
// under every one of Terms (all when none), at heights From..To and block
// times FromTime..ToTime (Unix ms; 0: unbounded on that side), after the
// position After, at most Limit of them.
type TxQuery struct {
	Terms            []transform.Term
	From, To         uint64
	FromTime, ToTime int64
	After            *TxPos
	Limit            int
	// Prove asks for each transaction's proof of inclusion in its block.
	Prove bool
}

// TxPos is a transaction's position: height and index in the block.
type TxPos struct {
	Height uint64
	Index  uint32
}

// Cursor encodes p as the opaque cursor of GET /v1/txs.
func (p TxPos) Cursor() string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], p.Height)
	binary.BigEndian.PutUint32(b[8:], p.Index)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ParseCursor decodes a cursor of GET /v1/txs.
func ParseCursor(s string) (TxPos, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 12 {
		return TxPos{}, invalid("cursor %q: not one this node handed out", s)
	}
	return TxPos{Height: binary.BigEndian.Uint64(b[:8]), Index: binary.BigEndian.Uint32(b[8:])}, nil
}

// TxItem is one transaction of a TxPage: the answer of GET /v1/tx/{id} (its
// height and index included) with its block's time and header hash, and with
// Prove its inclusion proof: Proof.Verify(header.TxRoot, ID) holds for the
// header of BlockHash at Height (GET /v1/headers/{height}).
type TxItem struct {
	TxResponse
	BlockTime int64            `json:"block_time"`
	BlockHash hash.Hash        `json:"block_hash"`
	Proof     *proof.ListProof `json:"proof,omitempty"`
}

// TxPage answers GET /v1/txs.
type TxPage struct {
	Txs []TxItem `json:"txs"`
	// Next is the cursor of the following page (pass it as after); empty when
	// this page is the last one.
	Next string `json:"next,omitempty"`
	// IndexedFrom and IndexedTo are the heights the node's index holds: older
	// history was pruned (storage.index_max_heights) and is not searched.
	IndexedFrom uint64 `json:"indexed_from"`
	IndexedTo   uint64 `json:"indexed_to"`
}

// TxIndexer is implemented by a Backend with a transaction index (a node with
// storage.index on); without it GET /v1/txs answers 404 not_found.
type TxIndexer interface {
	QueryTxs(ctx context.Context, q TxQuery) (*TxPage, error)
}

// txsTermParams are the query parameters of GET /v1/txs naming terms.
var txsTermParams = []struct{ param, kind string }{
	{"account", transform.TermAccount}, {"asset", transform.TermAsset},
	{"type", transform.TermType}, {"xtx", transform.TermXTx},
}

// ParseTxQuery reads the parameters of GET /v1/txs.
func ParseTxQuery(r *http.Request) (TxQuery, error) {
	v := r.URL.Query()
	var q TxQuery
	for _, p := range txsTermParams {
		for _, s := range v[p.param] {
			if s == "" {
				continue
			}
			q.Terms = append(q.Terms, transform.Term{Kind: p.kind, Value: s})
		}
	}
	var err error
	if q.From, q.FromTime, err = heightOrTime("from", v.Get("from")); err != nil {
		return q, err
	}
	if q.To, q.ToTime, err = heightOrTime("to", v.Get("to")); err != nil {
		return q, err
	}
	q.Limit = DefaultTxsLimit
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxTxsLimit {
			return q, invalid("limit %q: want 1 to %d", s, MaxTxsLimit)
		}
		q.Limit = n
	}
	if s := v.Get("after"); s != "" {
		p, err := ParseCursor(s)
		if err != nil {
			return q, err
		}
		q.After = &p
	}
	if s := v.Get("prove"); s != "" {
		if q.Prove, err = strconv.ParseBool(s); err != nil {
			return q, invalid("prove %q: want true or false", s)
		}
	}
	return q, nil
}

// heightOrTime parses a from/to bound: a height, or an RFC 3339 time.
func heightOrTime(name, s string) (uint64, int64, error) {
	if s == "" {
		return 0, 0, nil
	}
	if h, err := strconv.ParseUint(s, 10, 64); err == nil {
		return h, 0, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, 0, invalid("%s %q: want a height or an RFC 3339 time", name, s)
	}
	if t.UnixMilli() <= 0 {
		return 0, 0, invalid("%s %q: before 1970", name, s)
	}
	return 0, t.UnixMilli(), nil
}

// handleTxs: GET /v1/txs.
func (s *Server) handleTxs(w http.ResponseWriter, r *http.Request) {
	ix, ok := s.b.(TxIndexer)
	if !ok {
		s.fail(w, r, fmt.Errorf("%w: this node keeps no transaction index", ErrNotFound))
		return
	}
	q, err := ParseTxQuery(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	page, err := ix.QueryTxs(r.Context(), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}
