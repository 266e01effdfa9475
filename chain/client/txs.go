package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/transform"
)

// Txs asks the node's transaction index for one page of the committed
// transactions q selects (GET /v1/txs): those under every one of q.Terms, at
// heights q.From..q.To and block times q.FromTime..q.ToTime, after q.After.
// Pass the page's Next as the next query's After (ParseCursor) to go on.
// With q.Prove each item carries its proof of inclusion; VerifyTx checks it.
func (c *Client) Txs(ctx context.Context, q gateway.TxQuery) (*gateway.TxPage, error) {
	r, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/txs?" + TxQueryValues(q).Encode()})
	if err != nil {
		return nil, err
	}
	var page gateway.TxPage
	if err := decodeJSON(r, &page); err != nil {
		return nil, err
	}
	return &page, nil
}

// TxQueryValues is q as the query parameters of GET /v1/txs.
func TxQueryValues(q gateway.TxQuery) url.Values {
	v := url.Values{}
	names := map[string]string{transform.TermAccount: "account", transform.TermAsset: "asset",
		transform.TermType: "type", transform.TermXTx: "xtx"}
	for _, t := range q.Terms {
		if p, ok := names[t.Kind]; ok {
			v.Add(p, t.Value)
		}
	}
	bound := func(name string, h uint64, t int64) {
		switch {
		case h > 0:
			v.Set(name, strconv.FormatUint(h, 10))
		case t > 0:
			v.Set(name, time.UnixMilli(t).UTC().Format(time.RFC3339Nano))
		}
	}
	bound("from", q.From, q.FromTime)
	bound("to", q.To, q.ToTime)
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.After != nil {
		v.Set("after", q.After.Cursor())
	}
	if q.Prove {
		v.Set("prove", "true")
	}
	return v
}

// VerifyTx checks an item of a proven page: the header at its height (with
// its certificate, when the client trusts a validator set) has the item's
// block hash, and the proof puts the item's ID at its index under the
// header's TxRoot.
func (c *Client) VerifyTx(ctx context.Context, it *gateway.TxItem) error {
	if it.Proof == nil || it.TxResult == nil {
		return fmt.Errorf("%w: item has no proof (ask with Prove)", ErrProof)
	}
	hr, err := c.Header(ctx, it.Height)
	if err != nil {
		return err
	}
	if hr.Hash != it.BlockHash {
		return fmt.Errorf("%w: block %d is %s, the item names %s", ErrProof, it.Height, hr.Hash.Short(), it.BlockHash.Short())
	}
	if it.Proof.Index != it.Index {
		return fmt.Errorf("%w: proof is for index %d, the item is at %d", ErrProof, it.Proof.Index, it.Index)
	}
	if err := it.Proof.Verify(hr.Header.TxRoot, it.ID); err != nil {
		return fmt.Errorf("%w: transaction %s in block %d: %v", ErrProof, it.ID.Short(), it.Height, err)
	}
	return nil
}
