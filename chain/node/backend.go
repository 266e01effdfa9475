package node

import (
	"context"
	"errors"
	"fmt"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/mempool"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/chain/store"
	"github.com/plugchain/plug/chain/tx"
)

var _ gateway.Backend = (*Node)(nil)

// ChainID implements gateway.Backend.
func (n *Node) ChainID() string { return n.cfg.ChainID }

// Status implements gateway.Backend.
func (n *Node) Status() gateway.Status {
	n.mu.RLock()
	hdr, round, set := n.header, n.round, n.set
	n.mu.RUnlock()
	st := gateway.Status{ChainID: n.cfg.ChainID, Node: n.cfg.Name, Version: n.cfg.Version, Round: round,
		MempoolSize: n.pool.Len(), Validators: len(set), StateRoot: n.state.Root()}
	if hdr != nil {
		st.Height, st.LatestHash, st.Time = hdr.Height, hdr.Hash(), hdr.Time
	}
	if n.host != nil {
		st.Peers = len(n.host.Peers())
	}
	st.Validator = n.cfg.Validator && set.Find(n.address) >= 0
	if best := n.best.Load(); best > st.Height {
		st.CatchingUp, st.BestHeight = true, best
	}
	return st
}

// TxResult implements gateway.Backend.
func (n *Node) TxResult(_ context.Context, id hash.Hash) (*gateway.TxResult, error) {
	h, i, err := n.store.TxLocation(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: transaction %s is not committed", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	if h > n.height() {
		// The block is stored before the state is committed (crash safety); until
		// the state follows, a client told "committed" could read the old state.
		return nil, fmt.Errorf("%w: transaction %s is being committed", ErrNotFound, id)
	}
	rs, err := n.store.Receipts(h)
	if err != nil {
		return nil, err
	}
	b, err := n.store.Block(h)
	if err != nil {
		return nil, err
	}
	if i >= len(rs) || i >= len(b.Txs) {
		return nil, fmt.Errorf("block %d has no transaction %d", h, i)
	}
	return &gateway.TxResult{ID: id, Height: h, Index: uint32(i), Code: rs[i].Code, Error: rs[i].Error, Tx: b.Txs[i], Skipped: rs[i].Skipped}, nil
}

// TxStatus implements gateway.Backend.
func (n *Node) TxStatus(id hash.Hash) (*gateway.TxStatus, error) {
	if h, _, err := n.store.TxLocation(id); err == nil && h > n.height() {
		return &gateway.TxStatus{ID: id, Status: gateway.TxPending, Reason: fmt.Sprintf("being committed at height %d", h)}, nil
	}
	switch st, d := n.pool.Lookup(id); st {
	case mempool.Pending:
		out := &gateway.TxStatus{ID: id, Status: gateway.TxPending}
		if t := n.pool.Get(id); t != nil {
			n.waitingFor(t, out)
		}
		return out, nil
	case mempool.Dropped:
		out := &gateway.TxStatus{ID: id, Status: gateway.TxDropped, Reason: d.String()}
		if !d.Signer.IsZero() {
			signer := d.Signer
			out.Signer, out.Nonce, out.By, out.Height = &signer, d.Nonce, d.By, d.Height
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: transaction %s", ErrNotFound, id)
}

// waitingFor fills in what the pending t waits for: a nonce of one of its
// signers that is not committed and that no pending transaction holds.
func (n *Node) waitingFor(t *tx.Tx, out *gateway.TxStatus) {
	for _, s := range t.Body.Signers {
		a := s.Key.Address()
		c, err := n.nonces().Nonce(a)
		if err != nil {
			return
		}
		if next, _ := n.pool.Next(a, c); next < s.Nonce {
			out.Signer, out.WaitingFor = &a, &next
			out.Reason = fmt.Sprintf("waiting for nonce %d of signer %s, which no pending transaction holds (committed nonce %d)", next, a, c)
			return
		}
	}
}

// Nonce implements gateway.Backend.
func (n *Node) Nonce(addr crypto.Address) (*gateway.NonceInfo, error) {
	c, err := n.nonces().Nonce(addr)
	if err != nil {
		return nil, err
	}
	next, pending := n.pool.Next(addr, c)
	return &gateway.NonceInfo{Address: addr, Committed: c, Next: next, Pending: pending}, nil
}

func (n *Node) notFound(what string, height uint64, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %s %d (height is %d)", ErrNotFound, what, height, n.height())
	}
	return err
}

// Block implements gateway.Backend.
func (n *Node) Block(height uint64) (*block.Block, *consensus.Certificate, error) {
	b, err := n.store.Block(height)
	if err != nil {
		return nil, nil, n.notFound("block", height, err)
	}
	c, err := n.store.Certificate(height)
	if err != nil {
		return nil, nil, n.notFound("certificate", height, err)
	}
	return b, c, nil
}

// Header implements gateway.Backend.
func (n *Node) Header(height uint64) (*block.Header, *consensus.Certificate, error) {
	if hc, ok := n.byHeight.headers.Get(height); ok {
		return hc.h, hc.c, nil
	}
	h, err := n.store.Header(height)
	if err != nil {
		return nil, nil, n.notFound("header", height, err)
	}
	c, err := n.store.Certificate(height)
	if err != nil {
		return nil, nil, n.notFound("certificate", height, err)
	}
	n.byHeight.headers.Add(height, certified{h, c})
	return h, c, nil
}

// heightCache keeps what every proven read at a height needs: a committed
// header, its certificate and its state root never change, and a relay proving
// many keys at one height asks for them once per key.
type heightCache struct {
	headers *lru.Cache[uint64, certified]
	roots   *lru.Cache[uint64, hash.Hash]
}

type certified struct {
	h *block.Header
	c *consensus.Certificate
}

// heightCacheSize is how many heights heightCache holds (a light client keeps
// spv.MaxRoots).
const heightCacheSize = 512

func newHeightCache() heightCache {
	h, _ := lru.New[uint64, certified](heightCacheSize)
	r, _ := lru.New[uint64, hash.Hash](heightCacheSize)
	return heightCache{headers: h, roots: r}
}

// rootAt is the state root after height (state version v), cached.
func (n *Node) rootAt(height, v uint64) (hash.Hash, error) {
	if r, ok := n.byHeight.roots.Get(height); ok {
		return r, nil
	}
	r, err := n.state.RootAt(v)
	if err == nil {
		n.byHeight.roots.Add(height, r)
	}
	return r, err
}

// State implements gateway.Backend.
func (n *Node) State(height uint64, key string, prove bool) (*gateway.StateResult, error) {
	res, err := n.States(height, []string{key}, prove)
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// States implements gateway.Backend: every key at the same height, whose header,
// root and version are looked up once.
func (n *Node) States(height uint64, keys []string, prove bool) ([]*gateway.StateResult, error) {
	if height == 0 {
		height = n.height()
	}
	if height > n.height() {
		return nil, fmt.Errorf("%w: height %d is not committed (height is %d)", ErrNotFound, height, n.height())
	}
	v := versionOf(height)
	root, err := n.rootAt(height, v)
	if errors.Is(err, state.ErrUnknownVersion) {
		return nil, fmt.Errorf("%w: height %d", ErrNotFound, height)
	}
	if err != nil {
		return nil, err
	}
	out := make([]*gateway.StateResult, len(keys))
	for i, key := range keys {
		res := &gateway.StateResult{Key: key, Height: height, StateRoot: root}
		if prove {
			res.Value, res.Found, res.Proof, err = n.state.Prove(v, key)
		} else {
			res.Value, res.Found, err = n.state.GetAt(v, key)
		}
		if err != nil {
			return nil, fmt.Errorf("state %q at height %d: %w", key, height, err)
		}
		out[i] = res
	}
	return out, nil
}

// subscribers fans committed blocks and results out to event streams; a subscriber
// that falls behind loses events rather than slowing the node.
type subscribers struct {
	mu   sync.Mutex
	subs map[int]chan gateway.Event
	next int
}

// Subscribe implements gateway.Backend.
func (n *Node) Subscribe() (<-chan gateway.Event, func()) {
	s := &n.subs
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.subs == nil {
		s.subs = map[int]chan gateway.Event{}
	}
	id := s.next
	s.next++
	ch := make(chan gateway.Event, 1024)
	s.subs[id] = ch
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if c, ok := s.subs[id]; ok {
			delete(s.subs, id)
			close(c)
		}
	}
}

func (s *subscribers) publish(ev gateway.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

func (s *subscribers) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ch := range s.subs {
		delete(s.subs, id)
		close(ch)
	}
}

func (n *Node) publishEvents(b *block.Block, receipts []exec.Receipt) {
	n.subs.publish(gateway.Event{Kind: gateway.KindBlock, Height: b.Header.Height, Hash: b.Header.Hash(), Txs: len(b.Txs), Time: b.Header.Time})
	for i, r := range receipts {
		n.subs.publish(gateway.Event{Kind: gateway.KindTx, Height: b.Header.Height, ID: r.TxID, Index: uint32(i), Code: r.Code, Error: r.Error})
	}
}
