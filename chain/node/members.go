package node

import (
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/plugchain/plug/chain/valset"
)

// The libp2p allow list follows the committed validator set: at start and after
// every commit whose next validator set has other members, the node admits
//
//   - the validators of that set (their keys are their peer IDs),
//   - the peers configured in allow_peers (full nodes, relays),
//   - the peers configured in peers (the bootstrap peers it dials), and
//   - itself.
//
// Configured peers stay admitted when they leave the validator set, or were never
// in it: an operator named them, and a node whose bootstrap peer left the set must
// still start (p2p.New refuses a bootstrap peer outside the allow list). Everyone
// else is refused, and a validator that leaves the set is disconnected unless it
// is configured. A node joining the set is admitted by every validator from the
// block that adds it on: it keeps dialling its bootstrap peers (backing off while
// refused, at most 10 s apart), connects at its next attempt, syncs the blocks it
// missed and votes.

// configuredPeers parses the peer IDs of allow_peers and of the bootstrap
// addresses in peers.
func configuredPeers(cfg Config) ([]peer.ID, error) {
	var ids []peer.ID
	for _, s := range cfg.AllowPeers {
		id, err := peer.Decode(s)
		if err != nil {
			return nil, fmt.Errorf("allow peer %q: %w", s, err)
		}
		ids = append(ids, id)
	}
	for _, s := range cfg.Peers {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("peer address %q: %w", s, err)
		}
		ai, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			return nil, fmt.Errorf("peer address %q must end in /p2p/<peer ID>: %w", s, err)
		}
		ids = append(ids, ai.ID)
	}
	return ids, nil
}

// allowList returns the peers this node admits while set is the validator set.
func (n *Node) allowList(set valset.Set) []peer.ID {
	ids := slices.Clone(n.configured)
	for _, v := range set {
		if id, err := peerID(v.PubKey); err == nil {
			ids = append(ids, id)
		}
	}
	if id, err := n.PeerID(); err == nil {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// followSet updates the allow list after a commit changed the validator set
// from old to next; a change of power alone changes nothing.
func (n *Node) followSet(old, next valset.Set) {
	if n.host == nil || sameMembers(old, next) {
		return
	}
	var joined, left []string
	for _, v := range next {
		if old.Find(v.Address) < 0 {
			joined = append(joined, v.Address.String())
		}
	}
	for _, v := range old {
		if next.Find(v.Address) < 0 {
			left = append(left, v.Address.String())
		}
	}
	allow := n.allowList(next)
	n.host.SetAllowList(allow...)
	log.Infow("validator set changed: allow list updated", "joined", joined, "left", left, "validators", len(next), "allowed", len(allow))
}

// sameMembers reports whether two sets hold the same keys.
func sameMembers(a, b valset.Set) bool {
	if len(a) != len(b) {
		return false
	}
	for _, v := range a {
		i := b.Find(v.Address)
		if i < 0 || !b[i].PubKey.Equal(v.PubKey) {
			return false
		}
	}
	return true
}
