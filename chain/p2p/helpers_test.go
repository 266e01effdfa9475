package p2p

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Generous: the tests run on loaded 2-core machines.
const waitTimeout = 15 * time.Second

// identity is a pre-generated key, so allow lists can name peers before
// their hosts exist.
type identity struct {
	key crypto.PrivKey
	id  peer.ID
}

func newIdentity(t *testing.T) identity {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return identity{k, id}
}

// newHost starts a host on loopback with fast reconnects; it is closed when
// the test ends.
func newHost(t *testing.T, opts ...Option) *Host {
	t.Helper()
	base := []Option{
		WithChainID("test"),
		WithListen("/ip4/127.0.0.1/tcp/0"),
		WithReconnectBackoff(50*time.Millisecond, time.Second),
	}
	h, err := New(context.Background(), append(base, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

func bootstrapTo(hs ...*Host) Option {
	var addrs []ma.Multiaddr
	for _, h := range hs {
		addrs = append(addrs, h.Addrs()...)
	}
	return WithBootstrap(addrs...)
}

// eventually polls cond until it holds or the wait times out.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func join(t *testing.T, h *Host, name string, v Validator, opts ...TopicOption) *Topic {
	t.Helper()
	tp, err := h.Join(name, v, opts...)
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	t.Cleanup(func() { _ = tp.Close() })
	return tp
}

func acceptAll(peer.ID, []byte) error { return nil }

func waitTopicPeers(t *testing.T, tp *Topic, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := tp.WaitPeers(ctx, n); err != nil {
		t.Fatalf("topic %s on %s: %v", tp.ID(), tp.h.ID(), err)
	}
}

// next reads the next message or fails the test.
func next(t *testing.T, tp *Topic) Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	m, err := tp.Next(ctx)
	if err != nil {
		t.Fatalf("Next on %s: %v", tp.h.ID(), err)
	}
	return m
}

func errorIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}

// waitMesh waits until tp's gossipsub mesh includes all of peers, so that
// a message published now is forwarded to them without relying on gossip.
func waitMesh(t *testing.T, tp *Topic, peers ...*Host) {
	t.Helper()
	eventually(t, "mesh of "+tp.h.ID().String(), func() bool {
		mesh := tp.MeshPeers()
		for _, p := range peers {
			if !slices.Contains(mesh, p.ID()) {
				return false
			}
		}
		return true
	})
}
