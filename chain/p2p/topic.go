package p2p

import (
	"context"
	"errors"
	"fmt"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Validator decides whether a gossip message is valid. from is the peer
// that delivered it (this host's own ID for local publications), not
// necessarily its author. Return nil to accept, an error wrapping ErrIgnore
// to drop without penalty, any other error to reject: the message is then
// neither delivered nor forwarded and from's peer score falls.
//
// It runs concurrently for different messages and must be safe for that.
// It sits on the forwarding path of every message, so it must be quick and
// bounded: check signatures and structure, not anything that blocks.
type Validator func(from peer.ID, data []byte) error

// Message is a validated gossip message.
type Message struct {
	Data []byte
	// From is the peer that delivered the message (the author is whoever
	// signed the payload; pubsub itself carries no author).
	From peer.ID
	// ID is the SHA-256 of Data.
	ID [32]byte
}

// Topic is a joined gossipsub topic: publish to it and read what peers
// publish. Close it when done; Host.Close closes it too.
type Topic struct {
	h     *Host
	name  string
	id    string
	cfg   *topicConfig
	topic *pubsub.Topic
	sub   *pubsub.Subscription

	closeOnce sync.Once
	mu        sync.Mutex
	closed    bool
}

// TopicID is the pubsub topic of name on chain: "/plug/<chain>/<name>/1".
func TopicID(chain, name string) string { return "/plug/" + chain + "/" + name + "/1" }

// Join subscribes to the gossip topic name. validate must not be nil: it
// runs on every message, received or published, before delivery and
// forwarding. A name can be joined once per host at a time.
func (h *Host) Join(name string, validate Validator, opts ...TopicOption) (*Topic, error) {
	if err := checkName("topic name", name); err != nil {
		return nil, err
	}
	if validate == nil {
		return nil, fmt.Errorf("p2p: join %s: nil validator", name)
	}
	cfg := defaultTopicConfig()
	for _, o := range opts {
		if err := o(cfg); err != nil {
			return nil, err
		}
	}
	id := TopicID(h.cfg.chainID, name)

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("p2p: join %s: %w", id, ErrClosed)
	}
	if _, dup := h.topics[name]; dup {
		return nil, fmt.Errorf("p2p: join %s: already joined", id)
	}

	// The validator goes first so that no message is delivered unchecked.
	if err := h.ps.RegisterTopicValidator(id, h.wrapValidator(id, validate)); err != nil {
		return nil, fmt.Errorf("p2p: join %s: register validator: %w", id, err)
	}
	t := &Topic{h: h, name: name, id: id, cfg: cfg}
	fail := func(step string, err error) (*Topic, error) {
		if t.sub != nil {
			t.sub.Cancel()
		}
		if t.topic != nil {
			_ = t.topic.Close()
		}
		_ = h.ps.UnregisterTopicValidator(id)
		return nil, fmt.Errorf("p2p: join %s: %s: %w", id, step, err)
	}
	var err error
	if t.topic, err = h.ps.Join(id); err != nil {
		return fail("join", err)
	}
	if err = t.topic.SetScoreParams(topicScoreParams()); err != nil {
		return fail("score parameters", err)
	}
	if t.sub, err = t.topic.Subscribe(pubsub.WithBufferSize(cfg.buffer)); err != nil {
		return fail("subscribe", err)
	}
	h.topics[name] = t
	log.Debugw("joined topic", "topic", id)
	return t, nil
}

func (h *Host) wrapValidator(id string, validate Validator) pubsub.ValidatorEx {
	return func(_ context.Context, from peer.ID, m *pubsub.Message) (res pubsub.ValidationResult) {
		defer func() {
			if r := recover(); r != nil {
				log.Errorw("topic validator panicked; message rejected", "topic", id, "from", from, "panic", r)
				res = pubsub.ValidationReject
			}
		}()
		if len(m.Data) > h.cfg.maxMsgSize {
			log.Debugw("rejected oversized message", "topic", id, "from", from, "size", len(m.Data))
			return pubsub.ValidationReject
		}
		err := validate(from, m.Data)
		switch {
		case err == nil:
			return pubsub.ValidationAccept
		case errors.Is(err, ErrIgnore):
			log.Debugw("ignored message", "topic", id, "from", from, "reason", err)
			return pubsub.ValidationIgnore
		default:
			log.Debugw("rejected message", "topic", id, "from", from, "reason", err)
			return pubsub.ValidationReject
		}
	}
}

// Name is the topic's short name, as given to Join.
func (t *Topic) Name() string { return t.name }

// ID is the full pubsub topic, "/plug/<chain>/<name>/1".
func (t *Topic) ID() string { return t.id }

// Publish validates data with the topic's validator and sends it to the
// topic's peers. Publishing bytes identical to a message seen in the last
// two minutes is a silent no-op (message IDs are content hashes).
func (t *Topic) Publish(ctx context.Context, data []byte) error {
	if t.isClosed() {
		return fmt.Errorf("p2p: publish on %s: %w", t.id, ErrClosed)
	}
	if len(data) > t.h.cfg.maxMsgSize {
		return fmt.Errorf("p2p: publish on %s: %d bytes, limit %d: %w", t.id, len(data), t.h.cfg.maxMsgSize, ErrTooLarge)
	}
	if err := t.topic.Publish(ctx, data); err != nil {
		if t.isClosed() {
			return fmt.Errorf("p2p: publish on %s: %w", t.id, ErrClosed)
		}
		return fmt.Errorf("p2p: publish on %s: %w", t.id, err)
	}
	return nil
}

// Next blocks until the next valid message arrives. Messages this host
// published are skipped unless the topic was joined WithReceiveOwn. If the
// reader falls more than the buffer behind, older messages are dropped.
func (t *Topic) Next(ctx context.Context) (Message, error) {
	self := t.h.ID()
	for {
		m, err := t.sub.Next(ctx)
		if err == nil && m == nil { // subscription ended with pubsub
			err = ErrClosed
		}
		if err != nil {
			if t.isClosed() || errors.Is(err, ErrClosed) || errors.Is(err, pubsub.ErrSubscriptionCancelled) {
				return Message{}, fmt.Errorf("p2p: next on %s: %w", t.id, ErrClosed)
			}
			return Message{}, fmt.Errorf("p2p: next on %s: %w", t.id, err)
		}
		if m.ReceivedFrom == self && !t.cfg.receiveOwn {
			continue
		}
		var id [32]byte
		copy(id[:], m.ID)
		return Message{Data: m.Data, From: m.ReceivedFrom, ID: id}, nil
	}
}

// Peers are the connected peers subscribed to this topic.
func (t *Topic) Peers() []peer.ID { return t.topic.ListPeers() }

// MeshPeers are the peers this node currently forwards the topic's
// messages to (its gossipsub mesh); the mesh forms within about a second
// of peers subscribing.
func (t *Topic) MeshPeers() []peer.ID { return t.h.mesh.peers(t.id) }

// WaitPeers blocks until at least n connected peers are subscribed to the
// topic. It returns an error wrapping ErrNoPeers if ctx ends first.
func (t *Topic) WaitPeers(ctx context.Context, n int) error {
	return waitFor(ctx, t.h, func() int { return len(t.Peers()) }, n, "topic "+t.id)
}

// Close leaves the topic.
func (t *Topic) Close() error {
	t.h.mu.Lock()
	if t.h.topics[t.name] == t {
		delete(t.h.topics, t.name)
	}
	hostClosed := t.h.closed
	t.h.mu.Unlock()
	var err error
	t.closeOnce.Do(func() {
		t.shutdown()
		if hostClosed {
			return
		}
		if e := t.topic.Close(); e != nil {
			err = fmt.Errorf("p2p: close %s: %w", t.id, e)
		}
		if e := t.h.ps.UnregisterTopicValidator(t.id); e != nil && err == nil {
			err = fmt.Errorf("p2p: close %s: unregister validator: %w", t.id, e)
		}
	})
	return err
}

// shutdown marks the topic closed and ends its subscription.
func (t *Topic) shutdown() {
	t.mu.Lock()
	already := t.closed
	t.closed = true
	t.mu.Unlock()
	if !already {
		t.sub.Cancel()
	}
}

func (t *Topic) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}
