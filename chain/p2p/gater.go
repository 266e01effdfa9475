package p2p

import (
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// allowGater is a libp2p connection gater that admits only allow-listed
// peers: outbound dials are refused before they start, inbound
// connections as soon as the security handshake has authenticated the
// remote peer ID. An empty list admits everyone.
type allowGater struct {
	mu    sync.RWMutex
	allow map[peer.ID]struct{}
	// refusedIn counts inbound connections refused after the handshake: a
	// peer dialling in while not allowed (tests read it to bound redials).
	refusedIn atomic.Uint64
}

func newAllowGater(ids []peer.ID) *allowGater {
	g := &allowGater{}
	g.set(ids)
	return g
}

func (g *allowGater) set(ids []peer.ID) {
	m := make(map[peer.ID]struct{}, len(ids))
	for _, id := range ids {
		m[id] = struct{}{}
	}
	g.mu.Lock()
	g.allow = m
	g.mu.Unlock()
}

func (g *allowGater) allowed(p peer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if len(g.allow) == 0 {
		return true
	}
	_, ok := g.allow[p]
	return ok
}

func (g *allowGater) InterceptPeerDial(p peer.ID) bool {
	ok := g.allowed(p)
	if !ok {
		log.Debugw("refused dial to peer not on allow list", "peer", p)
	}
	return ok
}

func (g *allowGater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.allowed(p) }

// InterceptAccept admits every incoming connection: the peer ID is not
// known before the security handshake.
func (g *allowGater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *allowGater) InterceptSecured(dir network.Direction, p peer.ID, addrs network.ConnMultiaddrs) bool {
	ok := g.allowed(p)
	if !ok {
		if dir == network.DirInbound {
			g.refusedIn.Add(1)
		}
		log.Debugw("refused connection from peer not on allow list", "peer", p, "dir", dir, "remote", addrs.RemoteMultiaddr())
	}
	return ok
}

func (g *allowGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
