package p2p

import (
	"crypto/ed25519"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults.
const (
	DefaultListen         = "/ip4/127.0.0.1/tcp/0"
	DefaultMaxMessageSize = 4 << 20
	DefaultRequestTimeout = 30 * time.Second
	DefaultDialTimeout    = 10 * time.Second
	// PSKSize is the length of a private-network key.
	PSKSize = 32
)

// Option configures a Host.
type Option func(*config) error

type config struct {
	listen         []ma.Multiaddr
	key            crypto.PrivKey
	allow          []peer.ID
	psk            []byte
	bootstrap      []ma.Multiaddr
	chainID        string
	maxMsgSize     int
	requestTimeout time.Duration
	dialTimeout    time.Duration
	backoffMin     time.Duration
	backoffMax     time.Duration
	metrics        prometheus.Registerer
}

func defaultConfig() *config {
	return &config{
		maxMsgSize:     DefaultMaxMessageSize,
		requestTimeout: DefaultRequestTimeout,
		dialTimeout:    DefaultDialTimeout,
		backoffMin:     250 * time.Millisecond,
		backoffMax:     10 * time.Second,
	}
}

// WithListen sets the multiaddrs to listen on (TCP only), e.g.
// "/ip4/0.0.0.0/tcp/26656". Default: DefaultListen (loopback, random port).
func WithListen(addrs ...string) Option {
	return func(c *config) error {
		for _, s := range addrs {
			a, err := ma.NewMultiaddr(s)
			if err != nil {
				return fmt.Errorf("p2p: listen address %q: %w", s, err)
			}
			c.listen = append(c.listen, a)
		}
		return nil
	}
}

// WithIdentity sets the node's libp2p private key; its peer ID is derived
// from it. Default: a fresh random ed25519 key (a new ID on every start).
func WithIdentity(key crypto.PrivKey) Option {
	return func(c *config) error {
		if key == nil {
			return fmt.Errorf("p2p: nil identity key")
		}
		c.key = key
		return nil
	}
}

// WithIdentitySeed sets the node's identity from a 32-byte ed25519 seed.
func WithIdentitySeed(seed []byte) Option {
	return func(c *config) error {
		if len(seed) != ed25519.SeedSize {
			return fmt.Errorf("p2p: identity seed has %d bytes, want %d", len(seed), ed25519.SeedSize)
		}
		key, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed))
		if err != nil {
			return fmt.Errorf("p2p: identity seed: %w", err)
		}
		c.key = key
		return nil
	}
}

// WithAllowList restricts connections, inbound and outbound, to the given
// peers. An empty list allows every peer. See also Host.SetAllowList.
func WithAllowList(ids ...peer.ID) Option {
	return func(c *config) error {
		c.allow = append(c.allow, ids...)
		return nil
	}
}

// WithPrivateNetwork sets a 32-byte pre-shared key (libp2p pnet): only nodes
// holding the same key can complete a connection, and all traffic is
// additionally encrypted with it.
func WithPrivateNetwork(psk []byte) Option {
	return func(c *config) error {
		if len(psk) != PSKSize {
			return fmt.Errorf("p2p: private network key has %d bytes, want %d", len(psk), PSKSize)
		}
		c.psk = append([]byte(nil), psk...)
		return nil
	}
}

// WithBootstrap sets the peers to dial at start and keep reconnecting to,
// with exponential backoff. Each address must end in /p2p/<peer ID>.
func WithBootstrap(addrs ...ma.Multiaddr) Option {
	return func(c *config) error {
		c.bootstrap = append(c.bootstrap, addrs...)
		return nil
	}
}

// WithChainID namespaces topics and protocols: "/plug/<chain>/<name>/1".
// Required.
func WithChainID(id string) Option {
	return func(c *config) error {
		if err := checkName("chain ID", id); err != nil {
			return err
		}
		c.chainID = id
		return nil
	}
}

// WithMaxMessageSize bounds gossip messages and request/response frames.
// Default: DefaultMaxMessageSize (4 MiB).
func WithMaxMessageSize(n int) Option {
	return func(c *config) error {
		if n <= 0 || n > 1<<30 {
			return fmt.Errorf("p2p: max message size %d out of range (1 B .. 1 GiB)", n)
		}
		c.maxMsgSize = n
		return nil
	}
}

// WithRequestTimeout bounds a whole request/response exchange, on both
// sides, unless the caller's context ends sooner. Default: 30 s.
func WithRequestTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("p2p: request timeout must be positive")
		}
		c.requestTimeout = d
		return nil
	}
}

// WithReconnectBackoff sets the minimum and maximum delay between attempts
// to reach a bootstrap peer. Default: 250 ms .. 10 s (a peer that refuses us,
// e.g. a validator that admits this node only once it joins the set, is
// retried at least every 10 s).
func WithReconnectBackoff(min, max time.Duration) Option {
	return func(c *config) error {
		if min <= 0 || max < min {
			return fmt.Errorf("p2p: invalid reconnect backoff %v..%v", min, max)
		}
		c.backoffMin, c.backoffMax = min, max
		return nil
	}
}

// WithMetrics registers libp2p's Prometheus metrics with reg. Default: off.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(c *config) error {
		c.metrics = reg
		return nil
	}
}

// TopicOption configures a Topic.
type TopicOption func(*topicConfig) error

type topicConfig struct {
	receiveOwn bool
	buffer     int
}

func defaultTopicConfig() *topicConfig {
	return &topicConfig{buffer: 1024}
}

// WithReceiveOwn makes Next also return messages this host published.
func WithReceiveOwn() TopicOption {
	return func(c *topicConfig) error {
		c.receiveOwn = true
		return nil
	}
}

// WithBuffer sets how many received messages may wait for Next before
// newer ones are dropped. Default: 1024.
func WithBuffer(n int) TopicOption {
	return func(c *topicConfig) error {
		if n <= 0 {
			return fmt.Errorf("p2p: topic buffer must be positive")
		}
		c.buffer = n
		return nil
	}
}

// checkName accepts non-empty names that are safe as one path segment.
func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("p2p: empty %s", what)
	}
	if strings.ContainsAny(s, "/ \t\r\n") {
		return fmt.Errorf("p2p: %s %q must not contain '/' or spaces", what, s)
	}
	return nil
}
