package shard

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/settlement"
)

// Routes of a transfer.
const (
	RouteIntra = "intra-shard"
	RouteCross = "cross-shard"
)

// ErrUnknownShard: a chain the network does not list.
var ErrUnknownShard = errors.New("not a shard of the network")

// Client talks to a logical network as if it were one chain. It is safe for
// concurrent use.
type Client struct {
	net    *Network
	chains map[string]*client.Client
	reg    *transform.Registry
	copts  []client.Option

	mu    sync.Mutex
	homes map[crypto.Address]string
}

// Option configures a Client.
type Option func(*Client)

// WithChainClient uses cl for shard id instead of a client of its endpoints.
func WithChainClient(id string, cl *client.Client) Option {
	return func(c *Client) { c.chains[id] = cl }
}

// WithClientOptions passes opts to the client of every shard built from its
// endpoints (timeouts, TLS, trusted validators).
func WithClientOptions(opts ...client.Option) Option {
	return func(c *Client) { c.copts = append(c.copts, opts...) }
}

// WithRegistry sets the transform registry transactions are encoded with
// (default: app.Registry()).
func WithRegistry(reg *transform.Registry) Option { return func(c *Client) { c.reg = reg } }

// NewClient returns a client of net.
func NewClient(net *Network, opts ...Option) (*Client, error) {
	if err := net.Check(); err != nil {
		return nil, err
	}
	c := &Client{net: net, chains: map[string]*client.Client{}, homes: map[crypto.Address]string{}}
	for _, o := range opts {
		o(c)
	}
	if c.reg == nil {
		c.reg = app.Registry()
	}
	for _, s := range net.Shards {
		if c.chains[s.ChainID] != nil {
			continue
		}
		if len(s.Endpoints) == 0 {
			return nil, fmt.Errorf("%w: shard %q has no endpoints", ErrConfig, s.ChainID)
		}
		cl, err := client.New(s.Endpoints, append([]client.Option{client.WithChainID(s.ChainID)}, c.copts...)...)
		if err != nil {
			return nil, fmt.Errorf("shard %s: %w", s.ChainID, err)
		}
		c.chains[s.ChainID] = cl
	}
	return c, nil
}

// Network returns the network the client routes over.
func (c *Client) Network() *Network { return c.net }

// Chain returns the client of shard id.
func (c *Client) Chain(id string) (*client.Client, error) {
	cl, ok := c.chains[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q (shards: %v)", ErrUnknownShard, id, c.net.ChainIDs())
	}
	return cl, nil
}

// Readers returns the shards' clients as settlement readers.
func (c *Client) Readers() map[string]settlement.Reader {
	out := make(map[string]settlement.Reader, len(c.chains))
	for id, cl := range c.chains {
		out[id] = cl
	}
	return out
}

// Home returns the shard addr lives on: its directory pin; else the first
// placement candidate (oldest generation first) where it exists, proven against
// that shard's certified header; else, for an account that exists nowhere, the
// latest generation's. Answers are cached for the client's life.
func (c *Client) Home(ctx context.Context, addr crypto.Address) (string, error) {
	cands := c.net.Candidates(addr)
	if len(cands) == 1 {
		return cands[0], nil
	}
	c.mu.Lock()
	h, ok := c.homes[addr]
	c.mu.Unlock()
	if ok {
		return h, nil
	}
	h = cands[len(cands)-1]
	for _, cand := range cands[:len(cands)-1] {
		found, err := c.exists(ctx, cand, addr)
		if err != nil {
			return "", fmt.Errorf("placing %s: %w", addr, err)
		}
		if found {
			h = cand
			break
		}
	}
	c.mu.Lock()
	c.homes[addr] = h
	c.mu.Unlock()
	return h, nil
}

// exists reports whether addr has sent a transaction on shard id or holds any of
// the network's assets there.
func (c *Client) exists(ctx context.Context, id string, addr crypto.Address) (bool, error) {
	cl, err := c.Chain(id)
	if err != nil {
		return false, err
	}
	keys := []string{exec.NonceKey(addr)}
	for _, a := range c.net.Assets {
		keys = append(keys, asset.BalanceKey(a, addr))
	}
	for _, k := range keys {
		res, err := cl.State(ctx, 0, k, true)
		if err != nil {
			return false, fmt.Errorf("shard %s: %w", id, err)
		}
		var n uint64
		if err := res.Decode(&n); err != nil {
			return false, fmt.Errorf("shard %s: %s: %w", id, k, err)
		}
		if n > 0 {
			return true, nil
		}
	}
	return false, nil
}

// TransferResult is the outcome of a transfer on the network.
type TransferResult struct {
	// Route is intra-shard or cross-shard.
	Route     string `json:"route"`
	FromShard string `json:"from_shard"`
	ToShard   string `json:"to_shard"`
	// TxID, Code, Error and Height describe an intra-shard asset/transfer (Code
	// is empty while it is pending).
	TxID   string `json:"tx_id,omitempty"`
	Code   string `json:"code,omitempty"`
	Error  string `json:"error,omitempty"`
	Height uint64 `json:"height,omitempty"`
	// XTxID, XTx, Prepares and Status describe a cross-shard transfer.
	XTxID    string                     `json:"xtx_id,omitempty"`
	XTx      *crosschain.XTx            `json:"xtx,omitempty"`
	Prepares []settlement.PrepareResult `json:"prepares,omitempty"`
	Status   *settlement.Status         `json:"status,omitempty"`
}

// Done reports whether the transfer is final, and whether it took effect.
func (r *TransferResult) Done() (final, ok bool) {
	if r.Route == RouteIntra {
		return r.Code != "", r.Code == exec.OK.String()
	}
	if r.Status == nil {
		return false, false
	}
	return r.Status.Final, r.Status.State == settlement.Committed
}

// Transfer moves amount of assetName from key's account to to. Within one shard
// it is an asset/transfer there; across shards, a crosschain transaction
// coordinated by the payer's shard (CrossTransfer) whose prepares the payer
// signs. With wait, it returns once the transfer is final or timeout passes.
func (c *Client) Transfer(ctx context.Context, key crypto.PrivateKey, to crypto.Address, assetName string, amount uint64, wait bool, timeout time.Duration) (*TransferResult, error) {
	from := key.Public().Address()
	if err := asset.CheckName(assetName); err != nil {
		return nil, fmt.Errorf("%w: %v", client.ErrInvalid, err)
	}
	if amount == 0 {
		return nil, fmt.Errorf("%w: amount must be positive", client.ErrInvalid)
	}
	src, err := c.Home(ctx, from)
	if err != nil {
		return nil, err
	}
	dst, err := c.Home(ctx, to)
	if err != nil {
		return nil, err
	}
	res := &TransferResult{FromShard: src, ToShard: dst}
	if src == dst {
		res.Route = RouteIntra
		return res, c.intra(ctx, res, key, &asset.Transfer{Asset: assetName, From: from, To: to, Amount: amount}, wait, timeout)
	}
	res.Route = RouteCross
	dl, _ := c.net.deadline()
	var nb [8]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return nil, err
	}
	x := CrossTransfer(src, dst, assetName, from, to, amount, time.Now().Add(dl).UnixMilli(), binary.BigEndian.Uint64(nb[:]))
	s, err := crosschain.NewSigned(x, key)
	if err != nil {
		return nil, err
	}
	res.XTxID, res.XTx = x.ID().String(), &x
	wt := time.Duration(0) // without wait, the prepares are only submitted
	if wait {
		wt = timeout
	}
	keyFor := func(int, crosschain.Leg) (crypto.PrivateKey, error) { return key, nil }
	if res.Prepares, err = settlement.Prepare(ctx, c.reg, s, c.chains, keyFor, min(wt, settlement.PrepareTimeout)); err != nil {
		return res, fmt.Errorf("cross-shard transfer %s: %w", x.ID().Short(), err)
	}
	if res.Status, err = settlement.WaitFinal(ctx, &x, c.Readers(), wt, 200*time.Millisecond); err != nil {
		return res, fmt.Errorf("cross-shard transfer %s: %w", x.ID().Short(), err)
	}
	return res, nil
}

// intra submits tr on res.FromShard, signed by key.
func (c *Client) intra(ctx context.Context, res *TransferResult, key crypto.PrivateKey, tr transform.Transform, wait bool, timeout time.Duration) error {
	cl, err := c.Chain(res.FromShard)
	if err != nil {
		return err
	}
	n, err := cl.Nonce(ctx, key.Public().Address())
	if err != nil {
		return fmt.Errorf("shard %s: nonce: %w", res.FromShard, err)
	}
	t, err := tx.New(c.reg, res.FromShard, tr, tx.Signer{Key: key.Public(), Nonce: n})
	if err != nil {
		return err
	}
	if err := t.Sign(key); err != nil {
		return err
	}
	sr, err := cl.Submit(ctx, t, wait, timeout)
	if err != nil {
		return fmt.Errorf("shard %s: %w", res.FromShard, err)
	}
	res.TxID = sr.ID.String()
	if sr.Result != nil {
		res.Code, res.Error, res.Height = sr.Result.Code.String(), sr.Result.Error, sr.Result.Height
	}
	return nil
}

// AccountBalance is one account's balance of an asset on its shard.
type AccountBalance struct {
	Account crypto.Address `json:"account"`
	Shard   string         `json:"shard"`
	Amount  uint64         `json:"amount"`
	Height  uint64         `json:"height"`
	// Verified: proven against the shard's certified header at Height.
	Verified bool `json:"verified"`
}

// Balance returns addr's balance of assetName on its home shard.
func (c *Client) Balance(ctx context.Context, assetName string, addr crypto.Address, prove bool) (*AccountBalance, error) {
	h, err := c.Home(ctx, addr)
	if err != nil {
		return nil, err
	}
	cl, err := c.Chain(h)
	if err != nil {
		return nil, err
	}
	v, res, err := cl.ProvenBalance(ctx, assetName, addr, 0, prove)
	if err != nil {
		return nil, fmt.Errorf("shard %s: %w", h, err)
	}
	return &AccountBalance{Account: addr, Shard: h, Amount: v, Height: res.Height, Verified: res.Verified}, nil
}

// ShardAmount is one shard's answer to an aggregate query.
type ShardAmount struct {
	Shard    string `json:"shard"`
	Amount   uint64 `json:"amount"`
	Height   uint64 `json:"height"`
	Verified bool   `json:"verified"`
}

// Aggregate is an aggregate query's reduced answer and the per-shard answers it
// was reduced from.
type Aggregate struct {
	Asset  string        `json:"asset"`
	Total  uint64        `json:"total"`
	Shards []ShardAmount `json:"shards"`
	// Accounts holds the per-account answers of Balances.
	Accounts []AccountBalance `json:"accounts,omitempty"`
}

// Supply maps "supply/<asset>" over every shard (in parallel, each read proven
// when prove is set) and sums it. Value in flight between shards (burnt by a
// committed Out leg whose In leg has not finished yet) is in no shard's supply.
func (c *Client) Supply(ctx context.Context, assetName string, prove bool) (*Aggregate, error) {
	if err := asset.CheckName(assetName); err != nil {
		return nil, fmt.Errorf("%w: %v", client.ErrInvalid, err)
	}
	ids := c.net.ChainIDs()
	out := &Aggregate{Asset: assetName, Shards: make([]ShardAmount, len(ids))}
	err := c.each(ids, func(i int, id string) error {
		res, err := c.chains[id].State(ctx, 0, asset.SupplyKey(assetName), prove)
		if err != nil {
			return fmt.Errorf("shard %s: %w", id, err)
		}
		var n uint64
		if err := res.Decode(&n); err != nil {
			return fmt.Errorf("shard %s: supply: %w", id, err)
		}
		out.Shards[i] = ShardAmount{Shard: id, Amount: n, Height: res.Height, Verified: res.Verified}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, out.sum()
}

// Balances reads the balances of addrs, each on its home shard (shards in
// parallel), and sums them per shard and in total.
func (c *Client) Balances(ctx context.Context, assetName string, addrs []crypto.Address, prove bool) (*Aggregate, error) {
	out := &Aggregate{Asset: assetName, Accounts: make([]AccountBalance, len(addrs))}
	byShard := map[string][]int{}
	for i, a := range addrs {
		h, err := c.Home(ctx, a)
		if err != nil {
			return nil, err
		}
		byShard[h] = append(byShard[h], i)
	}
	var ids []string
	for _, id := range c.net.ChainIDs() {
		if len(byShard[id]) > 0 {
			ids = append(ids, id)
		}
	}
	err := c.each(ids, func(_ int, id string) error {
		for _, i := range byShard[id] {
			v, res, err := c.chains[id].ProvenBalance(ctx, assetName, addrs[i], 0, prove)
			if err != nil {
				return fmt.Errorf("shard %s: %w", id, err)
			}
			out.Accounts[i] = AccountBalance{Account: addrs[i], Shard: id, Amount: v, Height: res.Height, Verified: res.Verified}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		sa := ShardAmount{Shard: id, Verified: prove}
		for _, i := range byShard[id] {
			ab := out.Accounts[i]
			if sa.Amount > math.MaxUint64-ab.Amount {
				return nil, fmt.Errorf("balances of %s on %s overflow uint64", assetName, id)
			}
			sa.Amount += ab.Amount
			sa.Height = max(sa.Height, ab.Height)
			sa.Verified = sa.Verified && ab.Verified
		}
		out.Shards = append(out.Shards, sa)
	}
	return out, out.sum()
}

func (a *Aggregate) sum() error {
	a.Total = 0
	for _, s := range a.Shards {
		if a.Total > math.MaxUint64-s.Amount {
			return fmt.Errorf("total of %s overflows uint64", a.Asset)
		}
		a.Total += s.Amount
	}
	return nil
}

// each runs fn for every shard id concurrently and returns the first error.
func (c *Client) each(ids []string, fn func(i int, id string) error) error {
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { errs[i] = fn(i, id) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
