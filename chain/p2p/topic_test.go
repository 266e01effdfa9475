package p2p

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestTopicNaming(t *testing.T) {
	if got := TopicID("c1", "votes"); got != "/plug/c1/votes/1" {
		t.Fatalf("TopicID = %q", got)
	}
	if got := ProtocolID("c1", "blocks"); got != "/plug/c1/blocks/1" {
		t.Fatalf("ProtocolID = %q", got)
	}
	h := newHost(t)
	for _, bad := range []string{"", "a/b", "a b"} {
		if _, err := h.Join(bad, acceptAll); err == nil {
			t.Errorf("Join(%q) succeeded", bad)
		}
	}
	if _, err := h.Join("x", nil); err == nil {
		t.Error("Join with nil validator succeeded")
	}
	tp := join(t, h, "x", acceptAll)
	if tp.ID() != "/plug/test/x/1" {
		t.Fatalf("topic ID = %q", tp.ID())
	}
	if _, err := h.Join("x", acceptAll); err == nil {
		t.Error("second Join of the same topic succeeded")
	}
	if _, err := New(context.Background()); err == nil {
		t.Error("New without chain ID succeeded")
	}
}

// Four hosts bootstrap into one network; a message published by one
// reaches all others, exactly as sent.
func TestPublishReachesAll(t *testing.T) {
	h0 := newHost(t)
	h1 := newHost(t, bootstrapTo(h0))
	h2 := newHost(t, bootstrapTo(h0, h1))
	h3 := newHost(t, bootstrapTo(h1))
	hosts := []*Host{h0, h1, h2, h3}

	eventually(t, "bootstrap connections", func() bool {
		return h1.Connected(h0.ID()) && h2.Connected(h0.ID()) && h2.Connected(h1.ID()) && h3.Connected(h1.ID())
	})
	topics := make([]*Topic, len(hosts))
	for i, h := range hosts {
		topics[i] = join(t, h, "blocks", acceptAll)
	}
	// Relays forward along the mesh, which forms on the next heartbeat.
	waitMesh(t, topics[1], h0, h2)
	waitMesh(t, topics[0], h2)

	msg := []byte("block 1 from h3")
	if err := topics[3].Publish(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	for i, tp := range topics[:3] {
		m := next(t, tp)
		if !bytes.Equal(m.Data, msg) {
			t.Fatalf("host %d got %q", i, m.Data)
		}
		if m.ID != sha256.Sum256(msg) {
			t.Fatalf("host %d: message ID is not sha256(data)", i)
		}
		if m.From == "" || m.From == hosts[i].ID() {
			t.Fatalf("host %d: bad From %s", i, m.From)
		}
	}

	// The publisher does not read its own message back unless asked to.
	own := join(t, h3, "own", acceptAll, WithReceiveOwn())
	if err := own.Publish(context.Background(), []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if m := next(t, own); string(m.Data) != "mine" || m.From != h3.ID() {
		t.Fatalf("own message: %q from %s", m.Data, m.From)
	}

	big := make([]byte, DefaultMaxMessageSize+1)
	errorIs(t, topics[0].Publish(context.Background(), big), ErrTooLarge)
}

// Line A - B - C (enforced by allow lists). B's validator rejects "bad"
// messages: C never sees one, while valid messages still flow through B,
// and A's score at B falls.
func TestValidatorRejectStopsPropagation(t *testing.T) {
	a, b, c := newIdentity(t), newIdentity(t), newIdentity(t)
	ha := newHost(t, WithIdentity(a.key), WithAllowList(b.id))
	hb := newHost(t, WithIdentity(b.key), WithAllowList(a.id, c.id), bootstrapTo(ha))
	hc := newHost(t, WithIdentity(c.key), WithAllowList(b.id), bootstrapTo(hb))
	eventually(t, "line topology", func() bool { return hb.Connected(a.id) && hb.Connected(c.id) })
	if ha.Connected(c.id) {
		t.Fatal("A and C are directly connected")
	}

	var rejected atomic.Int32
	ta := join(t, ha, "votes", acceptAll)
	tb := join(t, hb, "votes", func(from peer.ID, data []byte) error {
		if bytes.HasPrefix(data, []byte("bad")) {
			rejected.Add(1)
			return fmt.Errorf("invalid signature from %s", from)
		}
		if bytes.HasPrefix(data, []byte("stale")) {
			return fmt.Errorf("old height: %w", ErrIgnore)
		}
		return nil
	})
	tc := join(t, hc, "votes", acceptAll)
	waitTopicPeers(t, ta, 1)
	waitMesh(t, tb, hc)

	for i := range 3 {
		if err := ta.Publish(context.Background(), fmt.Appendf(nil, "bad %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ta.Publish(context.Background(), []byte("stale 1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B to reject the bad messages", func() bool { return rejected.Load() == 3 })

	// The rejections are final before "good" is even published, so if
	// "good" is the first thing B and C see, no bad message got through.
	if err := ta.Publish(context.Background(), []byte("good")); err != nil {
		t.Fatal(err)
	}
	for name, tp := range map[string]*Topic{"B": tb, "C": tc} {
		if m := next(t, tp); string(m.Data) != "good" {
			t.Fatalf("%s received %q first", name, m.Data)
		}
	}
	eventually(t, "A's score at B to fall", func() bool {
		s, ok := hb.PeerScore(a.id)
		return ok && s < 0
	})
	if s, ok := hb.PeerScore(c.id); ok && s < 0 {
		t.Fatalf("C's score at B is %v, want >= 0", s)
	}

	// A local publication that fails validation is refused.
	err := tb.Publish(context.Background(), []byte("bad local"))
	if err == nil {
		t.Fatal("publishing an invalid message succeeded")
	}
}

func TestTopicCloseAndRejoin(t *testing.T) {
	h := newHost(t)
	tp := join(t, h, "x", acceptAll)
	done := make(chan error, 1)
	go func() {
		_, err := tp.Next(context.Background())
		done <- err
	}()
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	errorIs(t, <-done, ErrClosed)
	errorIs(t, tp.Publish(context.Background(), []byte("x")), ErrClosed)
	tp2 := join(t, h, "x", acceptAll) // the name is free again
	if err := tp2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tp2.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	errorIs(t, tp2.Publish(context.Background(), nil), ErrClosed)
}
