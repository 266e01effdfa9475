package p2p

import (
	"testing"
	"time"
)

// A host that dials a bootstrap peer which refuses it (not on that peer's
// allow list) backs off exponentially instead of redialling at once after
// every connection the remote gater closes; once the peer allows it, the
// next retry, within the capped backoff, connects, and the connection stays.
func TestRefusedPeerBacksOff(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	ha := newHost(t, WithIdentity(a.key), WithAllowList(a.id)) // refuses B
	const backoffMin, backoffMax = 100 * time.Millisecond, 2 * time.Second
	newHost(t, WithIdentity(b.key), bootstrapTo(ha), WithReconnectBackoff(backoffMin, backoffMax))

	const window = 5 * time.Second
	time.Sleep(window)
	attempts := ha.gater.refusedIn.Load()
	// Delays are drawn from [d/2, d] for d = 100 ms, 200 ms, ... capped at
	// 2 s: the first five waits take at least 1.55 s, each later one at
	// least 1 s, so 5 s hold at most 1 + 5 + 4 attempts; allow two for dials
	// that time out and scheduling on a loaded machine.
	t.Logf("refused connections from B in %v: %d", window, attempts)
	if attempts == 0 || attempts > 12 {
		t.Fatalf("A refused B %d times in %v, want 1..12 (backoff %v..%v)", attempts, window, backoffMin, backoffMax)
	}
	if ha.Connected(b.id) {
		t.Fatal("A is connected to B, which is not on its allow list")
	}

	allowed := time.Now()
	ha.SetAllowList(a.id, b.id)
	deadline := allowed.Add(backoffMax + 3*time.Second)
	for !ha.Connected(b.id) {
		if time.Now().After(deadline) {
			t.Fatalf("B did not connect within %v of being allowed (backoff cap %v)", time.Since(allowed), backoffMax)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("B connected %v after A allowed it", time.Since(allowed).Round(time.Millisecond))
	time.Sleep(3 * time.Second)
	if !ha.Connected(b.id) {
		t.Fatal("B's connection did not last")
	}
}
