// Package node runs one PLUG node: the consensus state machine driven by a single
// loop over libp2p gossip, timers and bbolt, the mempool, block sync, and the
// Backend the HTTP gateway serves. The loop keeps the one rule that makes crashes
// safe: what the machine asks to persist is on disk before any message that depends
// on it is sent.
package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	logging "github.com/ipfs/go-log/v2"
	p2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/mempool"
	"github.com/plugchain/plug/chain/p2p"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/chain/store"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/chain/validator"
	"github.com/plugchain/plug/chain/valset"
)

var log = logging.Logger("plug/node")

// Config configures a node.
type Config struct {
	// Name labels the node in logs and status.
	Name string
	// Home holds state.db and chain.db.
	Home string
	// Genesis is the chain's genesis document.
	Genesis *genesis.Doc
	// ChainID is filled from Genesis.
	ChainID string
	// Key is the node's ed25519 key: its libp2p identity, and its consensus signing
	// key when it is in the validator set.
	Key crypto.PrivateKey
	// Validator makes the node sign votes and proposals when its key is in the set.
	Validator bool
	// P2PListen is the libp2p listen multiaddr, e.g. /ip4/127.0.0.1/tcp/26656.
	P2PListen string
	// Peers are multiaddrs (with /p2p/ID) to connect to and keep connected.
	Peers []string
	// AllowPeers are extra peer IDs allowed to connect besides the validators.
	AllowPeers []string
	// PrivateNetwork is an optional pre-shared key for libp2p's private networks.
	PrivateNetwork []byte
	// Timeouts of consensus; zero means consensus.DefaultTimeouts().
	Timeouts consensus.Timeouts
	// MaxBlockTxs and MaxBlockBytes bound a proposal.
	MaxBlockTxs   int
	MaxBlockBytes int
	// StateCacheNodes bounds the state tree's node cache; 0 means the default.
	StateCacheNodes int
	// Registry and Models are the chain's transforms and models; both are
	// required. Every node of a chain must execute the same ones, or the nodes
	// compute different states and the chain halts: the plug binary passes
	// app.Registry() and app.Models().
	Registry *transform.Registry
	Models   *transform.Models
	// Clock returns Unix milliseconds; nil means the system clock.
	Clock func() int64
	// Hooks receive committed blocks (metrics, tests); optional.
	OnCommit func(b *block.Block, receipts []exec.Receipt)
	// Metrics, when set, are updated as the node runs.
	Metrics *gateway.Metrics
	// Version is reported in the status.
	Version string
}

// The node answers with the gateway's sentinel errors, which map to HTTP codes.
var (
	// ErrBusy: the mempool is full; retry later.
	ErrBusy = gateway.ErrBusy
	// ErrNotFound: no such block, transaction or key.
	ErrNotFound = gateway.ErrNotFound
)

// Node is a running PLUG node.
type Node struct {
	cfg     Config
	state   *state.Store
	store   *store.Store
	pool    *mempool.Pool
	exec    *exec.Executor
	models  *transform.Models
	host    *p2p.Host
	txs     *p2p.Topic
	cons    *p2p.Topic
	blocks  *p2p.Topic
	machine *consensus.Machine
	app     *app
	address crypto.Address

	mu     sync.RWMutex
	header *block.Header // last committed header, nil before block 1
	set    valset.Set    // validator set of the next height
	round  uint32
	// lastBlock is the block committed last (loop goroutine only): the machine
	// hands it to laggards, and it goes out in compact form.
	lastBlock *block.Block

	inbox  chan *consensus.Message
	outTxs chan []byte // admitted transactions waiting to be gossiped
	behind chan uint64
	best   atomic.Uint64 // highest height a peer spoke of while we were behind
	seq    atomic.Uint64 // gossip envelope sequence
	// decoded hands messages decoded by the topic validator to the reader, so a
	// proposal carrying a whole block is decoded once, not twice.
	decoded  decodedCache
	byHeight heightCache
	hydrated hydratedCache
	fetched  atomic.Uint64 // transactions fetched to rebuild compact blocks
	budget   blockBudget
	subs     subscribers
	cancel   context.CancelFunc
	running  bool // the loop was started; Close waits for it
	done     chan struct{}
}

// New opens (or creates) the node's stores under cfg.Home, writing the genesis state
// on first start, and recovers from a crash: a block saved but not yet applied to
// the state is re-executed.
func New(cfg Config) (*Node, error) {
	if cfg.Genesis == nil || cfg.Key == nil {
		return nil, errors.New("node: genesis and key are required")
	}
	if cfg.Registry == nil || cfg.Models == nil {
		return nil, errors.New("node: the transform registry and models are required (a plug chain's are app.Registry() and app.Models())")
	}
	cfg.ChainID = cfg.Genesis.ChainID
	if cfg.MaxBlockTxs == 0 {
		cfg.MaxBlockTxs = 2_000
	}
	if cfg.MaxBlockBytes == 0 {
		cfg.MaxBlockBytes = 8 << 20
	}
	if cfg.Clock == nil {
		cfg.Clock = func() int64 { return time.Now().UnixMilli() }
	}
	n := &Node{cfg: cfg, models: cfg.Models, pool: mempool.New(), address: cfg.Key.Public().Address(),
		inbox: make(chan *consensus.Message, 4096), outTxs: make(chan []byte, 4*MaxTxBatch), behind: make(chan uint64, 1), done: make(chan struct{}), byHeight: newHeightCache()}
	n.exec = exec.New(cfg.Registry, cfg.Models)
	n.app = &app{n: n}
	if err := os.MkdirAll(cfg.Home, 0o700); err != nil {
		return nil, fmt.Errorf("node home: %w", err)
	}
	var err error
	var sopts []state.Option
	if cfg.StateCacheNodes > 0 {
		sopts = append(sopts, state.WithNodeCache(cfg.StateCacheNodes))
	}
	if n.state, err = state.Open(filepath.Join(cfg.Home, "state.db"), sopts...); err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	if n.store, err = store.Open(filepath.Join(cfg.Home, "chain.db")); err != nil {
		n.state.Close()
		return nil, fmt.Errorf("open block store: %w", err)
	}
	if err := n.recover(); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// versionOf maps a height to its state version: genesis is version 1.
func versionOf(height uint64) uint64 { return height + 1 }

func (n *Node) recover() error {
	if n.state.Version() == 0 {
		if _, err := genesis.Init(n.state, n.cfg.Genesis, n.models); err != nil {
			return fmt.Errorf("write genesis state: %w", err)
		}
	}
	// The block store is written before the state, so it may be one block ahead.
	for versionOf(n.store.Height()) > n.state.Version() {
		h := n.state.Version() // the next height to apply
		b, err := n.store.Block(h)
		if err != nil {
			return fmt.Errorf("recover block %d: %w", h, err)
		}
		var prev *block.Header
		if h > 1 {
			if prev, err = n.store.Header(h - 1); err != nil {
				return fmt.Errorf("recover header %d: %w", h-1, err)
			}
		}
		out, err := block.Check(n.exec, n.state, prev, b, nil)
		if err != nil {
			return fmt.Errorf("re-execute block %d: %w", h, err)
		}
		if err := n.state.Commit(out.Batch); err != nil {
			return fmt.Errorf("re-apply block %d: %w", h, err)
		}
		log.Infow("re-applied block after a crash", "height", h)
	}
	if versionOf(n.store.Height()) != n.state.Version() {
		return fmt.Errorf("state is at height %d but the block store at %d: the home directory is inconsistent", n.state.Version()-1, n.store.Height())
	}
	if h := n.store.Height(); h > 0 {
		hdr, err := n.store.Header(h)
		if err != nil {
			return err
		}
		n.header = hdr
	}
	set, err := validator.Load(&stateGetter{n.state})
	if err != nil {
		return err
	}
	n.set = set
	return nil
}

// stateGetter decodes committed state values.
type stateGetter struct{ st *state.Store }

func (g *stateGetter) Get(key string, dst any) (bool, error) {
	v, ok, err := g.st.Get(key)
	if err != nil || !ok {
		return false, err
	}
	return true, encoding.UnmarshalLax(v, dst)
}

func (n *Node) height() uint64 {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.header == nil {
		return 0
	}
	return n.header.Height
}

func (n *Node) lastHeader() *block.Header {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.header
}

func (n *Node) clock() int64 { return n.cfg.Clock() }

// nonces reads committed nonces for the mempool.
func (n *Node) nonces() mempool.NonceReader { return nonceReader{n.state} }

type nonceReader struct{ st *state.Store }

func (r nonceReader) Nonce(a crypto.Address) (uint64, error) {
	var v uint64
	_, err := (&stateGetter{r.st}).Get(exec.NonceKey(a), &v)
	return v, err
}

// peerID derives the libp2p peer ID of an ed25519 PLUG key.
func peerID(pub crypto.PublicKey) (peer.ID, error) {
	if pub.Scheme != crypto.Ed25519 {
		return "", fmt.Errorf("peer identity needs an ed25519 key, got %s", pub.Scheme)
	}
	k, err := p2pcrypto.UnmarshalEd25519PublicKey(pub.Key)
	if err != nil {
		return "", err
	}
	return peer.IDFromPublicKey(k)
}

// PeerID returns this node's libp2p peer ID.
func (n *Node) PeerID() (peer.ID, error) { return peerID(n.cfg.Key.Public()) }

// Start joins the network and starts the consensus loop.
func (n *Node) Start(ctx context.Context) error {
	wal, err := n.store.LoadConsensus()
	if err != nil {
		return fmt.Errorf("read the consensus write-ahead state: %w (refusing to start: a validator that forgot its votes could sign conflicting ones; restore chain.db from a backup)", err)
	}
	ctx, n.cancel = context.WithCancel(ctx)
	allow := []peer.ID{}
	for _, v := range n.set {
		if id, err := peerID(v.PubKey); err == nil {
			allow = append(allow, id)
		}
	}
	for _, s := range n.cfg.AllowPeers {
		id, err := peer.Decode(s)
		if err != nil {
			return fmt.Errorf("allow peer %q: %w", s, err)
		}
		allow = append(allow, id)
	}
	if id, err := n.PeerID(); err == nil {
		allow = append(allow, id)
	}
	opts := []p2p.Option{p2p.WithChainID(n.cfg.ChainID), p2p.WithIdentitySeed(n.cfg.Key.Bytes()), p2p.WithAllowList(allow...)}
	if n.cfg.P2PListen != "" {
		opts = append(opts, p2p.WithListen(n.cfg.P2PListen))
	}
	if len(n.cfg.PrivateNetwork) > 0 {
		opts = append(opts, p2p.WithPrivateNetwork(n.cfg.PrivateNetwork))
	}
	var boot []ma.Multiaddr
	for _, s := range n.cfg.Peers {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return fmt.Errorf("peer address %q: %w", s, err)
		}
		boot = append(boot, a)
	}
	if len(boot) > 0 {
		opts = append(opts, p2p.WithBootstrap(boot...))
	}
	if n.host, err = p2p.New(ctx, opts...); err != nil {
		return fmt.Errorf("start libp2p: %w", err)
	}
	if err := n.host.Handle("sync", n.serveSync); err != nil {
		return err
	}
	if err := n.host.Handle("txs", n.serveTxs); err != nil {
		return err
	}
	if n.txs, err = n.host.Join("txs", n.validateTx); err != nil {
		return err
	}
	if n.cons, err = n.host.Join("consensus", n.validateConsensus); err != nil {
		return err
	}
	if n.blocks, err = n.host.Join("blocks", n.validateDecided); err != nil {
		return err
	}
	signer := crypto.PrivateKey(nil)
	if n.cfg.Validator {
		signer = n.cfg.Key
	}
	n.machine = consensus.New(consensus.Config{ChainID: n.cfg.ChainID, Signer: signer, Timeouts: n.cfg.Timeouts}, n.app)
	go n.readTopic(ctx, n.cons)
	go n.readTopic(ctx, n.blocks)
	go n.drainTxs(ctx)
	go n.gossipTxs(ctx)
	n.running = true
	go n.loop(ctx, wal)
	log.Infow("node started", "name", n.cfg.Name, "chain", n.cfg.ChainID, "height", n.height(), "validator", n.cfg.Validator, "addrs", n.host.Addrs())
	return nil
}

// Addrs returns the node's full libp2p addresses.
func (n *Node) Addrs() []string {
	var out []string
	for _, a := range n.host.Addrs() {
		out = append(out, a.String())
	}
	return out
}

// Close stops the node and closes its stores.
func (n *Node) Close() error {
	if n.cancel != nil {
		n.cancel()
		if n.running {
			<-n.done
		}
	}
	var errs []error
	if n.host != nil {
		errs = append(errs, n.host.Close())
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	if n.state != nil {
		errs = append(errs, n.state.Close())
	}
	n.subs.closeAll()
	return errors.Join(errs...)
}

// readTopic feeds validated consensus messages to the loop.
func (n *Node) readTopic(ctx context.Context, t *p2p.Topic) {
	for {
		m, err := t.Next(ctx)
		if err != nil {
			return
		}
		msg, ok := n.decoded.take(m.ID)
		if !ok {
			var err error
			if msg, err = n.openMsg(m.From, m.Data); err != nil {
				continue
			}
		}
		select {
		case n.inbox <- msg:
		case <-ctx.Done():
			return
		}
	}
}

// drainTxs consumes the transaction topic: validation already added them to the
// mempool, so reading only keeps the subscription flowing.
func (n *Node) drainTxs(ctx context.Context) {
	for {
		if _, err := n.txs.Next(ctx); err != nil {
			return
		}
	}
}

// validateConsensus drops malformed consensus messages at the edge.
func (n *Node) validateConsensus(from peer.ID, data []byte) error {
	if from == n.host.ID() {
		// Pubsub validates what this node publishes too; the machine made it,
		// and the node never reads its own messages back.
		return nil
	}
	msg, err := n.openMsg(from, data)
	if err == nil {
		n.decoded.put(sha256.Sum256(data), msg)
	}
	return err
}

// validateDecided accepts a committed block only with a certificate valid for the
// current set (or one ahead, which sync checks).
func (n *Node) validateDecided(from peer.ID, data []byte) error {
	if from == n.host.ID() {
		return nil // this node's own commit
	}
	msg, c, err := decodeMsg(data)
	if err != nil {
		return err
	}
	if msg.Decided == nil {
		return fmt.Errorf("%w: not a decided block", consensus.ErrBadMessage)
	}
	if msg.Decided.Cert.Height != n.height()+1 {
		return fmt.Errorf("stale or future block %d: %w", msg.Decided.Cert.Height, p2p.ErrIgnore)
	}
	n.mu.RLock()
	set := n.set
	n.mu.RUnlock()
	if err := msg.Decided.Cert.Verify(n.cfg.ChainID, set); err != nil {
		return err
	}
	if c != nil {
		// Rebuilt only now: validators receive every decided block they already
		// committed, and the height check above drops those for nothing.
		if msg.Decided.Block, err = n.rebuild(from, c); err != nil {
			return err
		}
	}
	n.decoded.put(sha256.Sum256(data), msg)
	return nil
}

// validateTx admits a gossiped batch of transactions into the mempool, verifying
// the signatures of those not already pending in one batch over all cores. A batch
// holding a malformed or badly signed transaction is rejected whole: an honest
// node only forwards transactions it verified, so the sender's score should fall.
func (n *Node) validateTx(_ peer.ID, data []byte) error {
	var raws [][]byte
	if err := encoding.Unmarshal(data, &raws); err != nil {
		return fmt.Errorf("transaction batch: %w", err)
	}
	if len(raws) > MaxTxBatch {
		return fmt.Errorf("transaction batch of %d, limit %d", len(raws), MaxTxBatch)
	}
	var fresh []*tx.Tx
	for i, raw := range raws {
		t, err := tx.Decode(raw)
		if err != nil {
			return fmt.Errorf("transaction %d of batch: %w", i, err)
		}
		if id, err := t.ID(); err == nil && n.pool.Has(id) {
			continue
		}
		// Not exec.Admit: the node that answered the client ran it, and a
		// payload a faulty peer slips in is dropped, with the executor's
		// reason, when a proposer meets it; decoding every relayed batch
		// again on every peer costs a DvP stream a tenth of its rate.
		fresh = append(fresh, t)
	}
	full := false
	for i, sig := range tx.VerifyProofs(fresh) {
		if sig != nil {
			return fmt.Errorf("transaction %d of batch: %w", i, sig)
		}
		if _, err := n.pool.Add(fresh[i], nil, n.nonces()); errors.Is(err, mempool.ErrFull) {
			full = true
		}
	}
	if full {
		return fmt.Errorf("mempool full: %w", p2p.ErrIgnore)
	}
	return nil
}

// blockLimit is how many transactions this node proposes at most: MaxBlockTxs,
// or fewer when their measured execution cost would outlast the stagger.
func (n *Node) blockLimit() int {
	st := n.cfg.Timeouts.Stagger
	if n.cfg.Timeouts == (consensus.Timeouts{}) {
		st = consensus.DefaultTimeouts().Stagger
	}
	return n.budget.limit(time.Duration(st)*time.Millisecond, n.cfg.MaxBlockTxs)
}

// MaxTxBatch bounds the transactions of one gossip message.
const MaxTxBatch = 1024

// gossipTxs publishes admitted transactions in batches, so that a burst of
// submissions costs a few gossip messages and batched signature checks at every
// peer rather than one of each per transaction.
func (n *Node) gossipTxs(ctx context.Context) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var batch [][]byte
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := n.txs.Publish(ctx, encoding.MustMarshal(batch)); err != nil {
			log.Debugw("gossip transactions", "n", len(batch), "err", err)
		}
		batch = nil
	}
	for {
		select {
		case <-ctx.Done():
			return
		case raw := <-n.outTxs:
			batch = append(batch, raw)
			if len(batch) >= MaxTxBatch {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

// Submit adds a transaction to this node's mempool and gossips it.
func (n *Node) Submit(ctx context.Context, t *tx.Tx) (hash.Hash, error) {
	ids, errs := n.SubmitBatch(ctx, []*tx.Tx{t})
	return ids[0], errs[0]
}

// SubmitBatch admits txs in order, as Submit would one by one, with their
// signatures checked in one batch: a client sending many transactions at once
// (POST /v1/txs) costs this node a batched verification rather than one
// single-signature check per transaction. It returns an ID and an error (nil
// when admitted or already pending; wrapping gateway.ErrCommitted when already
// committed) per transaction.
func (n *Node) SubmitBatch(ctx context.Context, txs []*tx.Tx) ([]hash.Hash, []error) {
	ids, errs := make([]hash.Hash, len(txs)), make([]error, len(txs))
	var check []*tx.Tx
	var at []int
	for i, t := range txs {
		t, err := tx.Decoded(t)
		if err != nil {
			errs[i] = fmt.Errorf("%w: %w", gateway.ErrInvalid, err)
			continue
		}
		id, err := t.ID()
		ids[i] = id
		switch {
		case t.Body.ChainID != n.cfg.ChainID:
			errs[i] = fmt.Errorf("%w: %w: transaction for chain %q, this is %q", gateway.ErrInvalid, tx.ErrWrongChain, t.Body.ChainID, n.cfg.ChainID)
		case err == nil && n.pool.Has(id):
			// already pending: submitting twice is harmless
		default:
			// What the executor would reject for its shape is refused now, not
			// answered "pending" and dropped later.
			if err := n.exec.Admit(n.cfg.ChainID, t); err != nil {
				errs[i] = fmt.Errorf("%w: %w", gateway.ErrInvalid, err)
				continue
			}
			check, at = append(check, t), append(at, i)
		}
	}
	for j, sig := range tx.VerifyProofs(check) {
		i, t := at[j], check[j]
		id, err := n.pool.Add(t, sig, n.nonces())
		ids[i] = id
		switch {
		case errors.Is(err, mempool.ErrFull):
			errs[i] = fmt.Errorf("%w: %w", ErrBusy, err)
			continue
		case errors.Is(err, mempool.ErrDuplicate) && n.pool.Has(id):
			continue
		case errors.Is(err, mempool.ErrDuplicate):
			errs[i] = fmt.Errorf("%w: %w", gateway.ErrNonceConflict, err)
			continue
		case errors.Is(err, mempool.ErrStaleNonce):
			errs[i] = n.staleReason(id, err)
			continue
		case err != nil:
			// Everything else the mempool or the checks refuse is the client's to fix.
			errs[i] = fmt.Errorf("%w: %w", gateway.ErrInvalid, err)
			continue
		}
		raw, err := t.Encode()
		if err != nil {
			errs[i] = err
			continue
		}
		select {
		case n.outTxs <- raw:
		case <-ctx.Done():
			errs[i] = ctx.Err()
		}
	}
	return ids, errs
}

// staleReason turns the mempool's refusal of a stale nonce into what the
// client needs to know: the same transaction is already committed (resubmitting
// it is harmless), it was dropped and why, or its nonce was used by another
// (a conflict: it was never admitted, and may be signed again).
func (n *Node) staleReason(id hash.Hash, err error) error {
	if h, _, lerr := n.store.TxLocation(id); lerr == nil && h <= n.height() {
		return fmt.Errorf("%w: transaction %s at height %d", gateway.ErrCommitted, id, h)
	}
	if st, d := n.pool.Lookup(id); st == mempool.Dropped {
		return fmt.Errorf("%w: transaction %s: %s", gateway.ErrDropped, id, d)
	}
	return fmt.Errorf("%w: %w", gateway.ErrNonceConflict, err)
}

// loop is the only goroutine that touches the consensus machine.
func (n *Node) loop(ctx context.Context, wal *consensus.State) {
	defer close(n.done)
	// A validator restarting mid-height resumes from its write-ahead state, so it
	// re-sends what it signed instead of signing anything new that could conflict.
	if st := wal; st != nil && st.Height == n.height()+1 {
		n.machine.Restore(st, n.currentSet(), n.clock())
	} else {
		n.machine.NewHeight(n.height()+1, n.currentSet(), n.clock())
	}
	n.handle(ctx)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var lastPeers time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-n.inbox:
			if err := n.machine.Receive(msg); err != nil {
				log.Debugw("consensus message refused", "err", err)
			}
		case now := <-tick.C:
			n.machine.Tick(n.clock())
			if now.Sub(lastPeers) >= time.Second {
				lastPeers = now
				n.cfg.Metrics.SetPeers(len(n.host.Peers()))
				n.cfg.Metrics.SetMempool(n.pool.Len())
			}
		case h := <-n.behind:
			n.sync(ctx, h)
			if n.height() >= n.best.Load() {
				n.best.Store(0)
			}
			n.machine.NewHeight(n.height()+1, n.currentSet(), n.clock())
		}
		n.handle(ctx)
	}
}

func (n *Node) currentSet() valset.Set {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.set
}

// handle carries out the machine's Ready: persist, send, commit.
func (n *Node) handle(ctx context.Context) {
	for {
		rd := n.machine.Ready()
		if rd.Persist != nil {
			if err := n.store.SaveConsensus(rd.Persist); err != nil {
				// Sending votes that are not on disk could equivocate after a restart.
				log.Errorw("persist consensus state; not sending", "err", err)
				return
			}
			n.mu.Lock()
			n.round = rd.Persist.Round
			n.mu.Unlock()
			n.cfg.Metrics.SetRound(rd.Persist.Round)
		}
		for i := range rd.Messages {
			if err := n.cons.Publish(ctx, n.encodeMsg(&rd.Messages[i], n.lastBlock)); err != nil {
				log.Debugw("publish consensus message", "err", err)
			}
		}
		for _, d := range rd.Decisions {
			if err := n.commit(ctx, d); err != nil {
				log.Errorw("commit decided block", "height", d.Height, "err", err)
				return
			}
			n.machine.NewHeight(d.Height+1, n.currentSet(), n.clock())
		}
		for _, ev := range rd.Evidence {
			switch {
			case ev.VoteA != nil:
				log.Warnw("equivocation: conflicting votes", "validator", ev.VoteA.Validator, "height", ev.VoteA.Height, "round", ev.VoteA.Round, "type", ev.VoteA.Type.String())
			case ev.ProposalA != nil:
				log.Warnw("equivocation: conflicting proposals", "validator", ev.ProposalA.Proposer, "height", ev.ProposalA.Height, "round", ev.ProposalA.Round)
			}
		}
		if rd.Behind > 0 {
			n.best.Store(max(n.best.Load(), rd.Behind))
			select {
			case n.behind <- rd.Behind:
			default:
			}
		}
		if rd.Persist == nil && len(rd.Messages) == 0 && len(rd.Decisions) == 0 {
			return
		}
	}
}

// commit makes a decided block durable: block store first, then state, so that a
// crash in between is repaired by re-executing the stored block on start.
func (n *Node) commit(ctx context.Context, d consensus.Decision) error {
	ex := n.app.outcome(d.Cert.BlockID)
	if ex == nil {
		if _, err := n.app.Validate(d.Height, d.Block); err != nil {
			return fmt.Errorf("decided block fails validation: %w", err)
		}
		ex = n.app.outcome(d.Cert.BlockID)
	}
	if err := n.store.SaveBlock(ex.block, &d.Cert, ex.out.Receipts); err != nil {
		return err
	}
	if err := n.state.Commit(ex.out.Batch); err != nil {
		return err
	}
	hdr := ex.block.Header
	n.mu.Lock()
	n.header, n.set = &hdr, ex.out.NextValidators
	n.mu.Unlock()
	n.app.reset()
	n.lastBlock = ex.block
	n.pool.Update(hdr.Height, ex.block.Txs, n.nonces())
	// Followers learn of the block from its proposer only: one copy of each block on
	// the topic rather than one per validator.
	if n.blocks != nil && hdr.Proposer == n.address {
		_ = n.blocks.Publish(ctx, n.encodeMsg(&consensus.Message{Decided: &consensus.Decided{Cert: d.Cert, Block: d.Block}}, ex.block))
	}
	n.publishEvents(ex.block, ex.out.Receipts)
	n.cfg.Metrics.BlockCommitted(hdr.Height, d.Cert.Round, ex.out.Receipts, time.Duration(max(0, n.clock()-hdr.Time))*time.Millisecond)
	n.cfg.Metrics.SetMempool(n.pool.Len())
	if n.cfg.OnCommit != nil {
		n.cfg.OnCommit(ex.block, ex.out.Receipts)
	}
	log.Debugw("committed", "height", hdr.Height, "txs", len(ex.block.Txs), "root", hdr.StateRoot.Short())
	return nil
}
