package p2p

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
)

func info(h *Host) peer.AddrInfo { return peer.AddrInfo{ID: h.ID(), Addrs: h.host.Addrs()} }

func TestAddrsAndIdentity(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, 32)
	h1 := newHost(t, WithIdentitySeed(seed))
	for _, a := range h1.Addrs() {
		if !strings.HasPrefix(a.String(), "/ip4/127.0.0.1/tcp/") || !strings.HasSuffix(a.String(), "/p2p/"+h1.ID().String()) {
			t.Fatalf("unexpected address %s", a)
		}
	}
	if len(h1.Addrs()) == 0 {
		t.Fatal("no addresses")
	}
	if err := h1.Close(); err != nil {
		t.Fatal(err)
	}
	h2 := newHost(t, WithIdentitySeed(seed))
	if h1.ID() != h2.ID() {
		t.Fatal("same seed, different peer IDs")
	}
	if _, err := New(context.Background(), WithChainID("c"), WithIdentitySeed([]byte("short"))); err == nil {
		t.Fatal("short seed accepted")
	}
	if _, err := New(context.Background(), WithChainID("c"), WithListen("/ip4/127.0.0.1/udp/0/quic-v1")); err == nil {
		t.Fatal("QUIC listen address accepted; only TCP is configured")
	}
}

// Hosts bootstrap, and a bootstrap peer that goes away and comes back on
// the same address and identity is reconnected.
func TestBootstrapReconnects(t *testing.T) {
	a := newIdentity(t)
	ha, err := New(context.Background(), WithChainID("test"), WithIdentity(a.key), WithListen("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	addrs := ha.Addrs()
	hb := newHost(t, WithBootstrap(addrs...))
	eventually(t, "B to reach A", func() bool { return hb.Connected(a.id) })

	if err := ha.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B to see A gone", func() bool { return !hb.Connected(a.id) })
	port := strings.Split(addrs[0].String(), "/")[4]
	newHost(t, WithIdentity(a.key), WithListen("/ip4/127.0.0.1/tcp/"+port))
	eventually(t, "B to reconnect to A", func() bool { return hb.Connected(a.id) })
}

// A peer that is not on the allow list can neither connect in nor be
// dialled out; allowed peers can.
func TestAllowList(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	ha := newHost(t, WithIdentity(a.key), WithAllowList(b.id))
	if err := ha.Handle("echo", func(_ context.Context, req []byte) ([]byte, error) { return req, nil }); err != nil {
		t.Fatal(err)
	}
	hb := newHost(t, WithIdentity(b.key), bootstrapTo(ha))
	hc := newHost(t, bootstrapTo(ha)) // not allowed by A; C itself allows all
	eventually(t, "allowed B to connect", func() bool { return ha.Connected(b.id) })

	// Inbound: C's attempts are refused by A's gater after the handshake,
	// so C cannot use A's services and A never lists C.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := hc.Request(ctx, a.id, "echo", []byte("hi")); err == nil {
		t.Fatal("request from a peer not on the allow list succeeded")
	}
	if resp, err := hb.Request(ctx, a.id, "echo", []byte("hi")); err != nil || string(resp) != "hi" {
		t.Fatalf("allowed request: %q, %v", resp, err)
	}
	for _, p := range ha.Peers() {
		if p == hc.ID() {
			t.Fatal("A is connected to C")
		}
	}

	// Outbound: A refuses to dial C.
	_, err := ha.Request(ctx, hc.ID(), "echo", nil)
	errorIs(t, err, ErrNotAllowed)
	err = ha.host.Connect(ctx, info(hc))
	errorIs(t, err, swarm.ErrGaterDisallowedConnection)

	// A bootstrap peer outside the allow list is a configuration error.
	_, err = New(context.Background(), WithChainID("test"), WithAllowList(b.id), bootstrapTo(hc))
	errorIs(t, err, ErrNotAllowed)

	// Shrinking the allow list drops connections to removed peers.
	ha.SetAllowList(a.id)
	eventually(t, "A to drop B", func() bool { return !ha.Connected(b.id) })
}

// Nodes with different private-network keys (or none) cannot connect.
func TestPrivateNetwork(t *testing.T) {
	psk1, psk2 := make([]byte, PSKSize), make([]byte, PSKSize)
	_, _ = rand.Read(psk1)
	_, _ = rand.Read(psk2)

	ha := newHost(t, WithPrivateNetwork(psk1))
	hb := newHost(t, WithPrivateNetwork(psk1), bootstrapTo(ha))
	hc := newHost(t, WithPrivateNetwork(psk2))
	hd := newHost(t)
	eventually(t, "same-key peers to connect", func() bool { return hb.Connected(ha.ID()) })

	// A key mismatch garbles the handshake, which then fails or stalls: a
	// short timeout is enough to show that no connection forms.
	var wg sync.WaitGroup
	for name, h := range map[string]*Host{"other key": hc, "no key": hd} {
		for dir, dial := range map[string][2]*Host{"in": {h, ha}, "out": {ha, h}} {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				if err := dial[0].host.Connect(ctx, info(dial[1])); err == nil {
					t.Errorf("%s, %s: connected", name, dir)
				}
			})
		}
	}
	wg.Wait()
	for _, h := range []*Host{hc, hd} {
		if ha.Connected(h.ID()) || h.Connected(ha.ID()) {
			t.Errorf("%s is connected to the private network", h.ID())
		}
	}
	if _, err := New(context.Background(), WithChainID("test"), WithPrivateNetwork([]byte("short"))); err == nil {
		t.Fatal("short PSK accepted")
	}
}

func TestRequestResponse(t *testing.T) {
	hs := newHost(t)
	hc := newHost(t, bootstrapTo(hs))
	small := newHost(t, WithMaxMessageSize(1024), bootstrapTo(hc))
	eventually(t, "connections", func() bool { return hc.Connected(hs.ID()) && small.Connected(hc.ID()) })

	echo := func(ctx context.Context, req []byte) ([]byte, error) {
		from, _ := PeerFromContext(ctx)
		return append([]byte(from.String()+":"), req...), nil
	}
	for _, h := range []*Host{hs, small} {
		if err := h.Handle("echo", echo); err != nil {
			t.Fatal(err)
		}
	}
	if err := hs.Handle("fail", func(context.Context, []byte) ([]byte, error) {
		return nil, errors.New("unknown block 42")
	}); err != nil {
		t.Fatal(err)
	}
	if err := hs.Handle("huge", func(context.Context, []byte) ([]byte, error) {
		return make([]byte, DefaultMaxMessageSize+1), nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := hs.Handle("slow", func(ctx context.Context, _ []byte) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	// Round trip, including an empty and a maximal request.
	for _, req := range [][]byte{[]byte("ping"), nil, bytes.Repeat([]byte{1}, DefaultMaxMessageSize-100)} {
		resp, err := hc.Request(ctx, hs.ID(), "echo", req)
		if err != nil {
			t.Fatalf("request of %d bytes: %v", len(req), err)
		}
		if want := append([]byte(hc.ID().String()+":"), req...); !bytes.Equal(resp, want) {
			t.Fatalf("response of %d bytes, want %d", len(resp), len(want))
		}
	}
	// To self, without the network.
	if resp, err := hs.Request(ctx, hs.ID(), "echo", []byte("me")); err != nil || string(resp) != hs.ID().String()+":me" {
		t.Fatalf("self request: %q, %v", resp, err)
	}

	// Handler errors reach the caller.
	_, err := hc.Request(ctx, hs.ID(), "fail", nil)
	var re *RemoteError
	if !errors.As(err, &re) || re.Message != "unknown block 42" || re.Peer != hs.ID() {
		t.Fatalf("got %v, want RemoteError", err)
	}

	// Oversized: refused locally, by the remote's smaller limit, and for
	// responses.
	_, err = hc.Request(ctx, hs.ID(), "echo", make([]byte, DefaultMaxMessageSize+1))
	errorIs(t, err, ErrTooLarge)
	_, err = hc.Request(ctx, small.ID(), "echo", make([]byte, 1<<20)) // more than a yamux window
	errorIs(t, err, ErrTooLarge)
	if !strings.Contains(err.Error(), "exceeds the limit of 1024") {
		t.Fatalf("error does not say why: %v", err)
	}
	_, err = hc.Request(ctx, hs.ID(), "huge", nil)
	errorIs(t, err, ErrTooLarge)
	// The connection survives all of that.
	if _, err := hc.Request(ctx, small.ID(), "echo", []byte("ok")); err != nil {
		t.Fatal(err)
	}

	_, err = hc.Request(ctx, hs.ID(), "nope", nil)
	errorIs(t, err, ErrNoHandler)

	// The caller's deadline bounds the exchange.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	_, err = hc.Request(short, hs.ID(), "slow", nil)
	errorIs(t, err, context.DeadlineExceeded)
}

// The request timeout applies on the serving side too.
func TestRequestTimeout(t *testing.T) {
	hs := newHost(t, WithRequestTimeout(500*time.Millisecond))
	hc := newHost(t, bootstrapTo(hs))
	handlerDone := make(chan error, 1)
	if err := hs.Handle("slow", func(ctx context.Context, _ []byte) ([]byte, error) {
		<-ctx.Done()
		handlerDone <- ctx.Err()
		return nil, ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "connection", func() bool { return hc.Connected(hs.ID()) })
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, err := hc.Request(ctx, hs.ID(), "slow", nil)
	var re *RemoteError
	if !errors.As(err, &re) || !strings.Contains(re.Message, "deadline") {
		t.Fatalf("got %v, want the handler's deadline error", err)
	}
	errorIs(t, <-handlerDone, context.DeadlineExceeded)
}

// Close is idempotent, ends every operation with ErrClosed and leaves no
// goroutines behind.
func TestCloseIsClean(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		ctx := context.Background()
		h1, err := New(ctx, WithChainID("test"), WithListen("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			t.Fatal(err)
		}
		h2, err := New(ctx, WithChainID("test"), WithListen("/ip4/127.0.0.1/tcp/0"), WithBootstrap(h1.Addrs()...))
		if err != nil {
			t.Fatal(err)
		}
		blocked := make(chan struct{})
		if err := h1.Handle("block", func(ctx context.Context, _ []byte) ([]byte, error) {
			close(blocked)
			<-ctx.Done()
			return nil, ctx.Err()
		}); err != nil {
			t.Fatal(err)
		}
		t1, err := h1.Join("x", acceptAll)
		if err != nil {
			t.Fatal(err)
		}
		t2, err := h2.Join("x", acceptAll)
		if err != nil {
			t.Fatal(err)
		}
		waitTopicPeers(t, t2, 1)
		if err := t2.Publish(ctx, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		if m := next(t, t1); string(m.Data) != "hello" {
			t.Fatalf("got %q", m.Data)
		}
		reqErr := make(chan error, 1)
		go func() {
			_, err := h2.Request(ctx, h1.ID(), "block", nil)
			reqErr <- err
		}()
		<-blocked
		nextErr := make(chan error, 1)
		go func() {
			_, err := t1.Next(ctx)
			nextErr <- err
		}()

		if err := h1.Close(); err != nil {
			t.Fatal(err)
		}
		if err := h1.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		errorIs(t, <-nextErr, ErrClosed)
		if err := <-reqErr; err == nil {
			t.Fatal("request in flight survived the server's Close")
		}
		errorIs(t, t1.Publish(ctx, []byte("x")), ErrClosed)
		_, err = h1.Join("y", acceptAll)
		errorIs(t, err, ErrClosed)
		errorIs(t, h1.Handle("z", func(context.Context, []byte) ([]byte, error) { return nil, nil }), ErrClosed)
		_, err = h1.Request(ctx, h2.ID(), "block", nil)
		errorIs(t, err, ErrClosed)
		if err := t1.Close(); err != nil {
			t.Fatalf("topic Close after host Close: %v", err)
		}
		if err := h2.Close(); err != nil {
			t.Fatal(err)
		}
	}()

	// Some goroutines end a moment after Close returns; poll.
	deadline := time.Now().Add(waitTimeout)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: %d before, %d after Close\n%s", before, runtime.NumGoroutine(), buf)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ExampleHost_Request() {
	ctx := context.Background()
	server, _ := New(ctx, WithChainID("example"))
	defer server.Close()
	client, _ := New(ctx, WithChainID("example"), WithBootstrap(server.Addrs()...))
	defer client.Close()

	_ = server.Handle("height", func(context.Context, []byte) ([]byte, error) {
		return []byte("42"), nil
	})
	resp, err := client.Request(ctx, server.ID(), "height", nil)
	fmt.Println(string(resp), err)
	// Output: 42 <nil>
}
