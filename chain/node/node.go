// Package node runs one PLUG node: the consensus state machine driven by a single
// loop over libp2p gossip, timers and bbolt, the mempool, block sync, and the
// Backend the HTTP gateway serves. The loop keeps the one rule that makes crashes
// safe: what the machine asks to persist is on disk before any message that depends
// on it is sent.
package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/boltcheck"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/index"
	"github.com/plugchain/plug/chain/mapreduce"
	"github.com/plugchain/plug/chain/mempool"
	"github.com/plugchain/plug/chain/p2p"
	"github.com/plugchain/plug/chain/state"
	"github.com/plugchain/plug/chain/store"
	"github.com/plugchain/plug/chain/transform"
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
	// NoIndex turns off the transaction index (index.db): GET /v1/txs then
	// answers 404 and nothing is written besides the block store and state.
	NoIndex bool
	// IndexMaxHeights keeps only the last IndexMaxHeights heights in the
	// transaction index (older ones are pruned as blocks commit); 0 keeps all.
	IndexMaxHeights uint64
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
	// MaxQueries bounds the map-reduce queries run at once (0: DefaultMaxQueries);
	// QueryLimits caps each query's limits (zero fields: mapreduce's defaults).
	MaxQueries  int
	QueryLimits mapreduce.Limits
	// TestEquivocate makes a validator sign a conflicting vote beside each of
	// its votes, so that tests can see the chain punish it. Never in production.
	TestEquivocate bool
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
	cfg   Config
	state *state.Store
	store *store.Store
	index *index.Index // nil: NoIndex
	// indexTarget is the highest committed height the indexer is to reach;
	// indexWake pokes it; indexDone closes when it stops (see runIndexer).
	indexTarget atomic.Uint64
	indexWake   chan struct{}
	indexDone   chan struct{}
	pool        *mempool.Pool
	exec        *exec.Executor
	models      *transform.Models
	host        *p2p.Host
	txs         *p2p.Topic
	cons        *p2p.Topic
	blocks      *p2p.Topic
	machine     *consensus.Machine
	app         *app
	address     crypto.Address
	// configured are the peer IDs of allow_peers and peers: admitted whatever
	// the validator set (members.go).
	configured []peer.ID

	mu     sync.RWMutex
	header *block.Header // last committed header, nil before block 1
	set    valset.Set    // validator set of the next height
	round  uint32
	// lastBlock is the block committed last (loop goroutine only): the machine
	// hands it to laggards, and it goes out in compact form.
	lastBlock *block.Block
	// parent is lastBlock's certificate with late votes (loop goroutine only).
	parent parentCert

	inbox  chan *consensus.Message
	outTxs chan []byte // admitted transactions waiting to be gossiped
	behind chan uint64
	best   atomic.Uint64 // highest height a peer spoke of while we were behind
	seq    atomic.Uint64 // gossip envelope sequence
	// decoded hands messages decoded by the topic validator to the reader, so a
	// proposal carrying a whole block is decoded once, not twice.
	decoded  decodedCache
	byHeight heightCache
	queries  querySlots // running map-reduce queries (query.go)
	hydrated hydratedCache
	fetched  atomic.Uint64 // transactions fetched to rebuild compact blocks
	budget   blockBudget
	subs     subscribers
	// reported is the highest height of equivocation evidence this node
	// submitted, per offender (loop goroutine only).
	reported map[crypto.Address]uint64
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
	if err := n.openIndex(); err != nil {
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
		// The state of height h must have the root h's header committed to: a
		// state.db that disagrees is damaged (or belongs to another chain).
		if root := n.state.Root(); root != hdr.StateRoot {
			return boltcheck.Corrupt(filepath.Join(n.cfg.Home, "state.db"), "its root at height %d is %s, but block %d's header has state root %s",
				h, root.Short(), h, hdr.StateRoot.Short())
		}
		n.header = hdr
	}
	set, err := validator.Load(&stateGetter{n.state})
	if err != nil {
		return err
	}
	n.set = set
	return n.loadParentCert()
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

// PeerID returns this node's libp2p peer ID.
func (n *Node) PeerID() (peer.ID, error) { return peerID(n.cfg.Key.Public()) }

// Start joins the network and starts the consensus loop.
func (n *Node) Start(ctx context.Context) error {
	wal, err := n.store.LoadConsensus()
	if err != nil {
		return fmt.Errorf("read the consensus write-ahead state: %w (refusing to start: a validator that forgot its votes could sign conflicting ones; restore chain.db from a backup)", err)
	}
	ctx, n.cancel = context.WithCancel(ctx)
	if n.configured, err = configuredPeers(n.cfg); err != nil {
		return err
	}
	allow := n.allowList(n.currentSet())
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
	if n.index != nil {
		n.indexWake, n.indexDone = make(chan struct{}, 1), make(chan struct{})
		go n.runIndexer(ctx)
	}
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
			if n.indexDone != nil {
				<-n.indexDone
			}
		}
	}
	var errs []error
	if n.host != nil {
		errs = append(errs, n.host.Close())
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	if n.index != nil {
		errs = append(errs, n.index.Close())
	}
	if n.state != nil {
		errs = append(errs, n.state.Close())
	}
	n.subs.closeAll()
	return errors.Join(errs...)
}
