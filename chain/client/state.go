package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/proof"
)

// StateResult is a state read. When proven, Verified says that the proof, the
// state root, the header and the certificate were all checked.
type StateResult struct {
	Key       string
	Height    uint64
	StateRoot hash.Hash
	Found     bool
	// Value is the stored canonical CBOR; nil when not found.
	Value       []byte
	Proof       *proof.StateProof
	Header      *block.Header
	Certificate *consensus.Certificate
	Verified    bool
}

// Decode decodes the value into dst; it leaves dst alone when not found.
func (s *StateResult) Decode(dst any) error {
	if !s.Found {
		return nil
	}
	return encoding.UnmarshalLax(s.Value, dst)
}

// State reads key after the block at height (0: the latest). With prove, the
// answer is verified (see StateResult.Verified) or rejected with ErrProof.
func (c *Client) State(ctx context.Context, height uint64, key string, prove bool) (*StateResult, error) {
	if key == "" {
		return nil, fmt.Errorf("%w: empty state key", ErrInvalid)
	}
	q := url.Values{}
	if height > 0 {
		q.Set("height", strconv.FormatUint(height, 10))
	}
	if prove {
		q.Set("prove", "true")
	}
	p := "/v1/state/" + escapeKey(key)
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	r, err := c.do(ctx, request{method: http.MethodGet, path: p, cbor: true})
	if err != nil {
		return nil, err
	}
	var sc gateway.StateCBOR
	if err := decodeCBOR(r, &sc); err != nil {
		return nil, err
	}
	res := &StateResult{Key: sc.Key, Height: sc.Height, StateRoot: sc.StateRoot, Found: sc.Found, Value: sc.Value,
		Proof: sc.Proof, Header: sc.Header, Certificate: sc.Certificate}
	if res.Key != key {
		return nil, fmt.Errorf("%w: %s answered key %q for %q", ErrProof, r.endpoint, res.Key, key)
	}
	if height > 0 && res.Height != height {
		return nil, fmt.Errorf("%w: %s answered height %d for %d", ErrProof, r.endpoint, res.Height, height)
	}
	if !res.Found && len(res.Value) > 0 {
		return nil, fmt.Errorf("%w: %s answered a value for a key it says is absent", ErrProof, r.endpoint)
	}
	if prove {
		if err := c.verifyState(ctx, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// States reads keys at one height (0: the latest) in one request (POST
// /v1/states, at most gateway.MaxStateKeys keys): the results are in the order
// of keys, all at the same height. With prove, every proof is checked against
// the one header, whose certificate is checked once.
func (c *Client) States(ctx context.Context, height uint64, keys []string, prove bool) ([]*StateResult, error) {
	if len(keys) == 0 || len(keys) > gateway.MaxStateKeys {
		return nil, fmt.Errorf("%w: %d keys: ask for 1 to %d", ErrInvalid, len(keys), gateway.MaxStateKeys)
	}
	body := encoding.MustMarshal(gateway.StatesRequest{Height: height, Keys: keys, Prove: prove})
	r, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/states", body: body, ctype: "application/cbor", cbor: true})
	if err != nil {
		return nil, err
	}
	var sr gateway.StatesResponse
	if err := decodeCBOR(r, &sr); err != nil {
		return nil, err
	}
	if len(sr.Results) != len(keys) {
		return nil, fmt.Errorf("%w: %s answered %d keys for %d", ErrProof, r.endpoint, len(sr.Results), len(keys))
	}
	if height > 0 && sr.Height != height {
		return nil, fmt.Errorf("%w: %s answered height %d for %d", ErrProof, r.endpoint, sr.Height, height)
	}
	out := make([]*StateResult, len(keys))
	for i, e := range sr.Results {
		res := &StateResult{Key: e.Key, Height: sr.Height, StateRoot: sr.StateRoot, Found: e.Found, Value: e.Value,
			Proof: e.Proof, Header: sr.Header, Certificate: sr.Certificate}
		if res.Key != keys[i] {
			return nil, fmt.Errorf("%w: %s answered key %q for %q", ErrProof, r.endpoint, res.Key, keys[i])
		}
		if !res.Found && len(res.Value) > 0 {
			return nil, fmt.Errorf("%w: %s answered a value for a key it says is absent", ErrProof, r.endpoint)
		}
		if prove {
			if err := verifyProof(res); err != nil {
				return nil, err
			}
		}
		out[i] = res
	}
	if prove {
		// The proofs hold against the answer's root; anchor that root once.
		if err := c.verifyAnchor(ctx, out[0]); err != nil {
			return nil, err
		}
		for _, res := range out[1:] {
			res.Header, res.Certificate, res.Verified = out[0].Header, out[0].Certificate, true
		}
	}
	return out, nil
}

// verifyState checks proof -> state root -> header -> certificate.
func (c *Client) verifyState(ctx context.Context, res *StateResult) error {
	if err := verifyProof(res); err != nil {
		return err
	}
	return c.verifyAnchor(ctx, res)
}

// verifyProof checks res's proof against res's state root.
func verifyProof(res *StateResult) error {
	if res.Proof == nil {
		return fmt.Errorf("%w: the node sent no proof for %q", ErrProof, res.Key)
	}
	var err error
	if res.Found {
		err = res.Proof.VerifyMembership(res.StateRoot, res.Key, res.Value)
	} else {
		err = res.Proof.VerifyNonMembership(res.StateRoot, res.Key)
	}
	if err != nil {
		what := "value"
		if !res.Found {
			what = "absence"
		}
		return fmt.Errorf("%w: the %s of %q at height %d does not match state root %s: %v", ErrProof, what, res.Key, res.Height, res.StateRoot.Short(), err)
	}
	return nil
}

// verifyAnchor checks res's state root -> header -> certificate, fetching the
// header when the answer did not carry it.
func (c *Client) verifyAnchor(ctx context.Context, res *StateResult) error {
	if res.Height == 0 {
		return fmt.Errorf("%w: state at height 0 (genesis) has no header to anchor the proof: retry once block 1 is committed", ErrProof)
	}
	if res.Header == nil || res.Certificate == nil {
		hr, err := c.Header(ctx, res.Height)
		if err != nil {
			return fmt.Errorf("header %d of the proof: %w", res.Height, err)
		}
		res.Header, res.Certificate = hr.Header, hr.Certificate
	}
	if res.Header.Height != res.Height {
		return fmt.Errorf("%w: the proof's header is for height %d, not %d", ErrProof, res.Header.Height, res.Height)
	}
	if res.Header.StateRoot != res.StateRoot {
		return fmt.Errorf("%w: the header at height %d has state root %s, the proof %s", ErrProof, res.Height, res.Header.StateRoot.Short(), res.StateRoot.Short())
	}
	if err := c.checkCert(res.Header, res.Certificate); err != nil {
		return err
	}
	res.Verified = true
	return nil
}

// escapeKey escapes each segment of a state key, keeping its slashes.
func escapeKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// Nonce returns the nonce addr's next transaction should carry: its committed
// nonce plus its transactions pending in the node's mempool (up to the first
// gap), so that transactions sent back to back never share a nonce.
func (c *Client) Nonce(ctx context.Context, addr crypto.Address) (uint64, error) {
	n, err := c.Nonces(ctx, addr)
	if err != nil {
		return 0, err
	}
	return n.Next, nil
}

// Nonces returns addr's committed nonce and the next one (see Nonce), as the
// node that answers knows them.
func (c *Client) Nonces(ctx context.Context, addr crypto.Address) (*gateway.NonceInfo, error) {
	r, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/accounts/" + addr.String() + "/nonce"})
	if err != nil {
		return nil, err
	}
	var n gateway.NonceInfo
	if err := decodeJSON(r, &n); err != nil {
		return nil, err
	}
	if n.Address != addr || n.Next < n.Committed {
		return nil, fmt.Errorf("%s answered nonces %+v for %s", r.endpoint, n, addr)
	}
	return &n, nil
}

// Asset returns the definition of the asset called name, or an error matching
// ErrUnknownAsset (and ErrNotFound) when the chain has none: a balance of an
// unknown asset reads as zero, and a transfer of one fails on chain after
// costing a nonce, so callers check first.
func (c *Client) Asset(ctx context.Context, name string) (*asset.Definition, error) {
	if err := asset.CheckName(name); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	r, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/state/" + escapeKey(asset.DefKey(name)), cbor: true})
	if err != nil {
		return nil, err
	}
	var sc gateway.StateCBOR
	if err := decodeCBOR(r, &sc); err != nil {
		return nil, err
	}
	if !sc.Found {
		chain := r.chain
		if chain == "" {
			chain = c.chainID
		}
		return nil, &unknownAsset{name: name, chain: chain}
	}
	var d asset.Definition
	if err := encoding.UnmarshalLax(sc.Value, &d); err != nil {
		return nil, fmt.Errorf("asset %q: %w", name, err)
	}
	return &d, nil
}

// Balance returns addr's committed balance of an asset (0 when it has none).
func (c *Client) Balance(ctx context.Context, assetName string, addr crypto.Address) (uint64, error) {
	v, _, err := c.ProvenBalance(ctx, assetName, addr, 0, false)
	return v, err
}

// ProvenBalance is Balance at height (0: latest), with the read proven and
// verified when prove is set.
func (c *Client) ProvenBalance(ctx context.Context, assetName string, addr crypto.Address, height uint64, prove bool) (uint64, *StateResult, error) {
	if err := asset.CheckName(assetName); err != nil {
		return 0, nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	res, err := c.State(ctx, height, asset.BalanceKey(assetName, addr), prove)
	if err != nil {
		return 0, nil, err
	}
	var v uint64
	if err := res.Decode(&v); err != nil {
		return 0, nil, fmt.Errorf("balance of %s: %w", addr, err)
	}
	return v, res, nil
}
