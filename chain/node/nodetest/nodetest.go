// Package nodetest starts PLUG nodes in a test's process: a real node (libp2p on
// 127.0.0.1, bbolt files in the test's temporary directory) with its HTTP gateway,
// stopped when the test ends. Tests of the client, the relay and the CLI share it.
package nodetest

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/node"
)

// Start starts a node for cfg and serves its gateway on a free port of
// 127.0.0.1; it returns the node and the gateway's base URL. An empty cfg.Home
// becomes a temporary directory and an empty cfg.P2PListen a free port. The
// node and the gateway stop when the test ends. cfg.Registry and cfg.Models are
// required, as by node.New: a test of a plug chain passes app.Registry() and
// app.Models().
func Start(t testing.TB, cfg node.Config) (*node.Node, string) {
	t.Helper()
	if cfg.Home == "" {
		cfg.Home = t.TempDir()
	}
	if cfg.P2PListen == "" {
		cfg.P2PListen = "/ip4/127.0.0.1/tcp/0"
	}
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := n.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		n.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { gateway.New(n).Serve(ctx, ln); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		n.Close()
	})
	return n, "http://" + ln.Addr().String()
}

// WaitHeight waits up to 20 s for n to commit height h (1: the node's chain is
// producing blocks), failing the test otherwise.
func WaitHeight(t testing.TB, n *node.Node, h uint64) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); n.Status().Height < h; {
		if time.Now().After(end) {
			t.Fatalf("node %s: no height %d within 20s (at %d)", n.ChainID(), h, n.Status().Height)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// CPUTime returns this process's user + system CPU time; benchmarks divide its
// growth by wall time and cores to tell CPU-bound runs from waiting ones.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
