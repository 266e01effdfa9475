package p2p

import (
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// meshTracer follows gossipsub's mesh (the peers this node forwards each
// topic's messages to) from the router's trace events, which pubsub does
// not otherwise expose.
type meshTracer struct {
	mu   sync.Mutex
	mesh map[string]map[peer.ID]struct{}
}

var _ pubsub.RawTracer = (*meshTracer)(nil)

func newMeshTracer() *meshTracer {
	return &meshTracer{mesh: make(map[string]map[peer.ID]struct{})}
}

func (m *meshTracer) peers(topic string) []peer.ID {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]peer.ID, 0, len(m.mesh[topic]))
	for p := range m.mesh[topic] {
		out = append(out, p)
	}
	return out
}

func (m *meshTracer) Graft(p peer.ID, topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mesh[topic] == nil {
		m.mesh[topic] = make(map[peer.ID]struct{})
	}
	m.mesh[topic][p] = struct{}{}
}

func (m *meshTracer) Prune(p peer.ID, topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.mesh[topic], p)
}

func (m *meshTracer) Leave(topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.mesh, topic)
}

func (m *meshTracer) OnClosedOutboundStream(p peer.ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, peers := range m.mesh {
		delete(peers, p)
	}
}

func (m *meshTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (m *meshTracer) Join(string)                                          {}
func (m *meshTracer) ValidateMessage(*pubsub.Message)                      {}
func (m *meshTracer) DeliverMessage(*pubsub.Message)                       {}
func (m *meshTracer) RejectMessage(*pubsub.Message, string)                {}
func (m *meshTracer) DuplicateMessage(*pubsub.Message)                     {}
func (m *meshTracer) ThrottlePeer(peer.ID)                                 {}
func (m *meshTracer) RecvRPC(*pubsub.RPC)                                  {}
func (m *meshTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (m *meshTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (m *meshTracer) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (m *meshTracer) UndeliverableMessage(*pubsub.Message)                 {}
