package p2p

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/gologshim"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

var log = golog.Logger("plug/p2p")

// RouteLibp2pLogs sends the logs of go-libp2p and go-libp2p-pubsub (which
// use log/slog) through go-log, so go-log's levels and format (a node's
// config.toml [log] section, or GOLOG_LOG_LEVEL) govern them too. It changes
// global state: call it once at start-up, after go-log is set up and before
// the first host starts (node.Home.SetupLogging does).
func RouteLibp2pLogs() {
	gologshim.SetDefaultHandler(golog.SlogHandler())
}

const (
	bootstrapTag   = "plug-bootstrap"
	reconnectCheck = 5 * time.Second
	// stableConn is how long a connection to a bootstrap peer must last to
	// count as made and reset the backoff: a peer whose gater refuses us
	// closes the connection right after the handshake.
	stableConn         = 2 * time.Second
	pubsubOverhead     = 64 << 10 // RPC framing around one message
	scoreInspectPeriod = time.Second
)

// Host is one node's libp2p endpoint: gossip topics and request/response
// protocols for one chain. It is safe for concurrent use.
type Host struct {
	cfg   *config
	host  host.Host
	ps    *pubsub.PubSub
	gater *allowGater

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // bootstrap loops and inbound request handlers

	mu       sync.Mutex
	closed   bool
	topics   map[string]*Topic
	handlers map[string]Handler
	wake     map[peer.ID]chan struct{} // bootstrap peer -> disconnect signal

	mesh      *meshTracer
	scores    atomic.Pointer[map[peer.ID]float64]
	closeOnce sync.Once
	closeErr  error
}

// New starts a host: it listens, starts gossipsub and dials the bootstrap
// peers in the background. ctx only bounds start-up; call Close to stop.
func New(ctx context.Context, opts ...Option) (*Host, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("p2p: start host: %w", err)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(cfg); err != nil {
			return nil, err
		}
	}
	if cfg.chainID == "" {
		return nil, errors.New("p2p: no chain ID: pass p2p.WithChainID")
	}
	if len(cfg.listen) == 0 {
		if err := WithListen(DefaultListen)(cfg); err != nil {
			return nil, err
		}
	}
	if cfg.key == nil {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("p2p: generate identity: %w", err)
		}
		cfg.key = k
	}
	self, err := peer.IDFromPrivateKey(cfg.key)
	if err != nil {
		return nil, fmt.Errorf("p2p: identity: %w", err)
	}
	gater := newAllowGater(cfg.allow)

	boot, err := peer.AddrInfosFromP2pAddrs(cfg.bootstrap...)
	if err != nil {
		return nil, fmt.Errorf("p2p: bootstrap addresses must end in /p2p/<peer ID>: %w", err)
	}
	// A shared list of all validators may include this node: skip it.
	boot = slices.DeleteFunc(boot, func(ai peer.AddrInfo) bool { return ai.ID == self })
	for _, ai := range boot {
		if !gater.allowed(ai.ID) {
			return nil, fmt.Errorf("%w: bootstrap peer %s is not on the allow list", ErrNotAllowed, ai.ID)
		}
	}

	cm, err := connmgr.NewConnManager(100, 400, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("p2p: connection manager: %w", err)
	}
	lopts := []libp2p.Option{
		libp2p.Identity(cfg.key),
		libp2p.ListenAddrs(cfg.listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionGater(gater),
		libp2p.ConnectionManager(cm),
		// Permissioned network: peers come from configuration only, and
		// nodes are reachable at the addresses they listen on.
		libp2p.DisableRelay(),
		libp2p.ForceReachabilityPublic(),
		libp2p.DisableIdentifyAddressDiscovery(),
	}
	if cfg.psk != nil {
		lopts = append(lopts, libp2p.PrivateNetwork(cfg.psk))
	}
	if cfg.metrics != nil {
		lopts = append(lopts, libp2p.PrometheusRegisterer(cfg.metrics))
	} else {
		lopts = append(lopts, libp2p.DisableMetrics())
	}
	lh, err := libp2p.New(lopts...)
	if err != nil {
		return nil, fmt.Errorf("p2p: start libp2p host: %w", err)
	}

	hctx, cancel := context.WithCancel(context.Background())
	h := &Host{
		cfg:      cfg,
		host:     lh,
		gater:    gater,
		ctx:      hctx,
		cancel:   cancel,
		topics:   make(map[string]*Topic),
		handlers: make(map[string]Handler),
		wake:     make(map[peer.ID]chan struct{}),
		mesh:     newMeshTracer(),
	}
	empty := map[peer.ID]float64{}
	h.scores.Store(&empty)

	h.ps, err = pubsub.NewGossipSub(hctx, lh,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(messageID),
		pubsub.WithMaxMessageSize(cfg.maxMsgSize+pubsubOverhead),
		// Validator sets are small: send own messages to every subscribed
		// peer at once rather than only to the mesh (lower latency, and
		// nothing is lost while the mesh is still forming).
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerScore(peerScoreParams(), peerScoreThresholds()),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(h.storeScores), scoreInspectPeriod),
		pubsub.WithRawTracer(h.mesh),
	)
	if err != nil {
		cancel()
		_ = lh.Close()
		return nil, fmt.Errorf("p2p: start gossipsub: %w", err)
	}

	lh.Network().Notify(&network.NotifyBundle{DisconnectedF: h.disconnected})
	for _, ai := range boot {
		w := make(chan struct{}, 1)
		h.wake[ai.ID] = w
		lh.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
		lh.ConnManager().Protect(ai.ID, bootstrapTag)
		h.wg.Add(1)
		go h.keepConnected(ai, w)
	}
	log.Infow("p2p host started", "chain", cfg.chainID, "peer", lh.ID(), "addrs", lh.Addrs(),
		"bootstrap", len(boot), "allow_list", len(cfg.allow), "private_network", cfg.psk != nil)
	return h, nil
}

// messageID is the gossip message ID: SHA-256 of the data. Identical
// payloads are therefore one message, delivered once.
func messageID(m *pb.Message) string {
	sum := sha256.Sum256(m.Data)
	return string(sum[:])
}

// ID is this node's peer ID.
func (h *Host) ID() peer.ID { return h.host.ID() }

// Addrs are the addresses this node listens on, each ending in /p2p/<ID>,
// ready to be given to other nodes as bootstrap addresses.
func (h *Host) Addrs() []ma.Multiaddr {
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.host.ID(), Addrs: h.host.Addrs()})
	if err != nil {
		return nil
	}
	return addrs
}

// Peers are the peers this node is connected to now.
func (h *Host) Peers() []peer.ID { return h.host.Network().Peers() }

// Connected reports whether this node has a connection to p.
func (h *Host) Connected(p peer.ID) bool {
	return h.host.Network().Connectedness(p) == network.Connected
}

// AddPeer records addresses of a peer (each ending in /p2p/<ID>) so that
// Request can dial it. Unlike bootstrap peers it is not kept connected.
func (h *Host) AddPeer(addrs ...ma.Multiaddr) error {
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil {
		return fmt.Errorf("p2p: peer addresses must end in /p2p/<peer ID>: %w", err)
	}
	for _, ai := range infos {
		h.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
	}
	return nil
}

// WaitPeers blocks until this node is connected to at least n peers. It
// returns an error wrapping ErrNoPeers if ctx ends first.
func (h *Host) WaitPeers(ctx context.Context, n int) error {
	return waitFor(ctx, h, func() int { return len(h.Peers()) }, n, "host")
}

// SetAllowList replaces the allow list (an empty list allows every peer)
// and closes connections to peers that are no longer allowed. Use it when
// the validator set changes.
func (h *Host) SetAllowList(ids ...peer.ID) {
	h.gater.set(ids)
	for _, p := range h.Peers() {
		if !h.gater.allowed(p) {
			log.Infow("disconnecting peer removed from allow list", "peer", p)
			_ = h.host.Network().ClosePeer(p)
		}
	}
}

// PeerScore is the gossipsub score of a connected peer as last sampled
// (about once a second); it falls when the peer forwards invalid messages.
func (h *Host) PeerScore(p peer.ID) (float64, bool) {
	s, ok := (*h.scores.Load())[p]
	return s, ok
}

func (h *Host) storeScores(m map[peer.ID]float64) {
	c := make(map[peer.ID]float64, len(m))
	for k, v := range m {
		c[k] = v
	}
	h.scores.Store(&c)
}

// Close stops the host: topics are closed, connections dropped, background
// work and in-flight request handlers finished. It is safe to call twice.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closed = true
		topics := make([]*Topic, 0, len(h.topics))
		for _, t := range h.topics {
			topics = append(topics, t)
		}
		h.mu.Unlock()
		for _, t := range topics {
			t.shutdown()
		}
		h.cancel()
		if err := h.host.Close(); err != nil {
			h.closeErr = fmt.Errorf("p2p: close libp2p host: %w", err)
		}
		h.wg.Wait()
		log.Infow("p2p host closed", "peer", h.host.ID())
	})
	return h.closeErr
}

func (h *Host) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

func (h *Host) disconnected(_ network.Network, c network.Conn) {
	h.mu.Lock()
	w := h.wake[c.RemotePeer()]
	h.mu.Unlock()
	if w != nil {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// keepConnected dials a bootstrap peer until connected, then waits for a
// disconnection and starts over, with exponential backoff and jitter.
//
// A connection counts as made only once it has lasted stableConn: one the
// peer closes sooner (its gater refusing us, as a validator does with a node
// outside its allow list) is a failed attempt, so the backoff keeps growing
// instead of starting over after every refused handshake. Logs name each
// step of the backoff, not each attempt.
func (h *Host) keepConnected(ai peer.AddrInfo, wake <-chan struct{}) {
	defer h.wg.Done()
	r := redial{min: h.cfg.backoffMin, max: h.cfg.backoffMax, backoff: h.cfg.backoffMin}
	var since time.Time // when the current connection was seen first; zero while there is none
	stable := false     // the current connection has lasted stableConn
	for {
		connected := h.host.Network().Connectedness(ai.ID) == network.Connected
		switch {
		case connected && since.IsZero():
			since = time.Now() // the peer dialled us, or a request did
		case connected && !stable && time.Since(since) >= stableConn:
			stable = true
			log.Infow("connected to bootstrap peer", "peer", ai.ID, "attempts", r.attempts+1)
			r.reset()
		case !connected && !since.IsZero():
			lasted := time.Since(since)
			since, stable = time.Time{}, false
			if lasted < stableConn {
				if !h.backOff(ai.ID, &r, fmt.Errorf("%w: the connection closed %v after it opened (the peer refuses us, or is stopping)", errShortConn, lasted.Round(time.Millisecond))) {
					return
				}
				continue
			}
			log.Debugw("bootstrap peer disconnected", "peer", ai.ID, "after", lasted.Round(time.Second))
			r.reset()
		}
		if !connected {
			// Our own backoff replaces the swarm's per-address one.
			if sw, ok := h.host.Network().(*swarm.Swarm); ok {
				sw.Backoff().Clear(ai.ID)
			}
			ctx, cancel := context.WithTimeout(h.ctx, h.cfg.dialTimeout)
			err := h.host.Connect(ctx, ai)
			cancel()
			if h.ctx.Err() != nil {
				return
			}
			if err != nil {
				if !h.backOff(ai.ID, &r, err) {
					return
				}
				continue
			}
			since = time.Now()
			log.Debugw("dialled bootstrap peer", "peer", ai.ID, "attempts", r.attempts+1)
		}
		wait := reconnectCheck
		if !since.IsZero() && !stable {
			wait = max(time.Millisecond, stableConn-time.Since(since))
		}
		t := time.NewTimer(wait)
		select {
		case <-h.ctx.Done():
			t.Stop()
			return
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// errShortConn: a connection to a bootstrap peer closed before it counted as made.
var errShortConn = errors.New("short-lived connection")

// backOff records a failed attempt to reach p and sleeps the backoff; it
// returns false if the host closed meanwhile. The delay's growth is logged,
// once per step: a peer that refuses us for an hour costs a handful of lines.
func (h *Host) backOff(p peer.ID, r *redial, err error) bool {
	delay, grew := r.fail()
	switch {
	case grew && r.backoff == r.max:
		log.Warnw("bootstrap peer still refuses us or is unreachable; retrying at the longest backoff", "peer", p, "attempts", r.attempts, "retry_in", delay.Round(time.Millisecond), "max_backoff", r.max, "err", err)
	case grew || r.attempts == 1:
		log.Infow("bootstrap peer refuses us or is unreachable; backing off", "peer", p, "attempts", r.attempts, "retry_in", delay.Round(time.Millisecond), "err", err)
	default:
		log.Debugw("bootstrap peer refuses us or is unreachable", "peer", p, "attempts", r.attempts, "retry_in", delay.Round(time.Millisecond), "err", err)
	}
	return sleep(h.ctx, delay)
}

// redial is the exponential backoff of one bootstrap peer.
type redial struct {
	min, max, backoff time.Duration
	attempts          int // failed attempts since the last connection that lasted
}

// fail counts a failed attempt and returns the delay before the next one
// (jittered within [backoff/2, backoff]), and whether the backoff grew.
func (r *redial) fail() (time.Duration, bool) {
	r.attempts++
	delay := r.backoff/2 + mrand.N(r.backoff/2+1)
	old := r.backoff
	r.backoff = min(2*r.backoff, r.max)
	return delay, r.backoff > old
}

func (r *redial) reset() { r.attempts, r.backoff = 0, r.min }

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// waitFor polls count until it reaches n.
func waitFor(ctx context.Context, h *Host, count func() int, n int, what string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if h.isClosed() {
			return fmt.Errorf("p2p: wait for peers of %s: %w", what, ErrClosed)
		}
		got := count()
		if got >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s has %d of %d peers: %w", ErrNoPeers, what, got, n, ctx.Err())
		case <-h.ctx.Done():
		case <-tick.C:
		}
	}
}

// Gossipsub peer scoring: only invalid messages (P4) are scored, so a peer
// that forwards messages its validators reject is first ignored for gossip,
// then for publishing, and then graylisted; the penalty decays over time.
func peerScoreParams() *pubsub.PeerScoreParams {
	return &pubsub.PeerScoreParams{
		SkipAtomicValidation: true,
		Topics:               map[string]*pubsub.TopicScoreParams{},
		AppSpecificScore:     func(peer.ID) float64 { return 0 },
		DecayInterval:        time.Second,
		DecayToZero:          0.01,
		RetainScore:          10 * time.Minute,
	}
}

func peerScoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		SkipAtomicValidation: true,
		GossipThreshold:      -400,
		PublishThreshold:     -800,
		GraylistThreshold:    -1600,
	}
}

func topicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		SkipAtomicValidation:           true,
		TopicWeight:                    1,
		TimeInMeshQuantum:              time.Second, // unused (weight 0) but must not be 0
		InvalidMessageDeliveriesWeight: -100,
		InvalidMessageDeliveriesDecay:  0.95,
	}
}
