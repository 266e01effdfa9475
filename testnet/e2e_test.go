package testnet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plugchain/plug/testnet"
)

// plugBin is the plug binary TestMain builds.
var plugBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "plug-testnet-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	plugBin = filepath.Join(dir, "plug")
	build := exec.Command("go", "build", "-o", plugBin, "github.com/plugchain/plug/cmd/plug")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building plug:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// plug runs the binary with args (a minute at most) and decodes its JSON
// output into v unless v is nil (plugErr decodes it even when the command
// fails, so that a test can look at a reported failure). HOME and PLUG_* are cleared so the user's
// settings never leak in.
func plug(t *testing.T, v any, args ...string) {
	t.Helper()
	if err := plugErr(t, v, args...); err != nil {
		t.Fatal(err)
	}
}

func plugErr(t testing.TB, v any, args ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, plugBin, args...)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PLUG_") && !strings.HasPrefix(e, "HOME=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+t.TempDir())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if v != nil {
			// A command that reports a failed outcome still prints it.
			_ = json.Unmarshal(out.Bytes(), v)
		}
		return fmt.Errorf("plug %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	if v != nil {
		if err := json.Unmarshal(out.Bytes(), v); err != nil {
			return fmt.Errorf("plug %s: stdout is not JSON: %v\n%s", strings.Join(args, " "), err, out.String())
		}
	}
	return nil
}

// status runs `plug testnet status --output json` and returns the one chain.
func status(t *testing.T, dir string) testnet.ChainReport {
	t.Helper()
	var r testnet.Report
	plug(t, &r, "testnet", "status", "--dir", dir, "--output", "json")
	if len(r.Chains) != 1 {
		t.Fatalf("status lists %d chains, want 1: %+v", len(r.Chains), r)
	}
	return r.Chains[0]
}

// eventually polls cond every 250 ms for up to a minute.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	within(t, time.Minute, what, cond)
}

// within polls cond every 250 ms for up to d.
func within(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("after %s, still not %s: %s", d, what, last)
}

// transfer sends 5 USD from alice to bob through the CLI and waits for the commit.
func transfer(t *testing.T, dir string) {
	t.Helper()
	var res map[string]any
	plug(t, &res, "tx", "transfer", "--testnet", dir, "--from", "alice", "--to", "bob",
		"--asset", "USD", "--amount", "5", "--wait", "--output", "json")
	if s, ok := res["status"]; ok && s != "ok" {
		t.Fatalf("transfer committed with status %v: %v", s, res)
	}
}

func maxHeight(nodes []testnet.NodeReport, skip string) uint64 {
	var h uint64
	for _, n := range nodes {
		if n.Name != skip && n.Alive {
			h = max(h, n.Height)
		}
	}
	return h
}

// testnetDir returns a directory for a testnet that is stopped when the test
// ends, with the end of every node's and relay's log shown if the test failed.
func testnetDir(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "tn")
	t.Cleanup(func() {
		if err := plugErr(t, nil, "testnet", "down", "--dir", dir); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(dir, "*", "*", "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				t.Logf("--- end of %s:\n%s", l, b)
			}
		}
	})
	return dir
}

// TestTestnetEndToEnd starts a real 4-validator testnet as processes,
// submits transfers through the CLI, crashes one validator with SIGKILL,
// keeps committing with the other three, restarts it and checks that it
// catches up with the same state root.
func TestTestnetEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 4-node testnet; skipped with -short")
	}
	start := time.Now()
	dir := testnetDir(t)

	var up testnet.Report
	plug(t, &up, "testnet", "up", "--dir", dir, "--chains", "1", "--validators", "4", "--detach", "--output", "json")
	if len(up.Chains) != 1 || len(up.Chains[0].Nodes) != 4 {
		t.Fatalf("up: want 1 chain of 4 nodes, got %+v", up)
	}
	for _, n := range up.Chains[0].Nodes {
		if !n.Alive || n.Height < testnet.ReadyHeight {
			t.Fatalf("up returned before %s committed blocks: %+v", n.Name, n)
		}
	}
	t.Logf("up: %v", time.Since(start))

	for i := 0; i < 2; i++ {
		transfer(t, dir)
	}

	victim := up.Chains[0].Nodes[3].Name
	plug(t, nil, "testnet", "kill", "--dir", dir, victim)
	var killedAt uint64
	for _, n := range status(t, dir).Nodes {
		if n.Name == victim {
			if n.Alive || n.PID != 0 {
				t.Fatalf("%s still alive after kill: %+v", victim, n)
			}
		}
	}
	killedAt = maxHeight(status(t, dir).Nodes, victim)
	t.Logf("killed %s at height %d: %v", victim, killedAt, time.Since(start))

	// Three of four validators hold 3/4 > 2/3 of the power: the chain goes on.
	for i := 0; i < 3; i++ {
		transfer(t, dir)
	}
	eventually(t, "committing without "+victim, func() (bool, string) {
		h := maxHeight(status(t, dir).Nodes, victim)
		return h >= killedAt+2, fmt.Sprintf("height %d, killed at %d", h, killedAt)
	})

	plug(t, nil, "testnet", "restart", "--dir", dir, victim)
	transfer(t, dir)
	// The height of the others once the last transfer is committed: the
	// restarted node must get there, and to the same state root.
	target := maxHeight(status(t, dir).Nodes, victim)
	t.Logf("restarted %s; others at height %d: %v", victim, target, time.Since(start))

	var ref testnet.NodeReport
	eventually(t, victim+" caught up", func() (bool, string) {
		nodes := status(t, dir).Nodes
		var me testnet.NodeReport
		for _, n := range nodes {
			if n.Name == victim {
				me = n
			} else if n.Alive {
				ref = n
			}
		}
		if !me.Alive {
			t.Fatalf("%s died after restart: %+v", victim, me)
		}
		return me.Height >= target, fmt.Sprintf("%s at height %d (error %q), target %d", victim, me.Height, me.Error, target)
	})
	// The same state root at a common height, read from each node's own state.
	victimHTTP := ""
	for _, n := range up.Chains[0].Nodes {
		if n.Name == victim {
			victimHTTP = n.HTTP
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, mine, err := testnet.StateRoot(ctx, victimHTTP, target)
	if err != nil {
		t.Fatal(err)
	}
	_, theirs, err := testnet.StateRoot(ctx, ref.HTTP, target)
	if err != nil {
		t.Fatal(err)
	}
	if mine != theirs || mine == "" {
		t.Fatalf("state root at height %d: %s has %s, %s has %s", target, victim, mine, ref.Name, theirs)
	}
	t.Logf("%s caught up with state root %s at height %d: %v", victim, mine[:16], target, time.Since(start))

	// bob got 5 USD per transfer, on the restarted node too.
	want := fmt.Sprint(testnet.InitialBalance + 6*5)
	for _, where := range [][]string{
		{"--testnet", dir},
		{"--node", victimHTTP, "--keyring-dir", filepath.Join(dir, testnet.KeyringDir), "--keyring-backend", "test"},
	} {
		var bal struct {
			Balance json.Number `json:"balance"`
		}
		args := append([]string{"query", "balance", "--account", "bob", "--asset", "USD", "--output", "json"}, where...)
		plug(t, &bal, args...)
		if bal.Balance.String() != want {
			t.Errorf("plug %s: balance %s, want %s", strings.Join(args, " "), bal.Balance, want)
		}
	}

	plug(t, nil, "testnet", "down", "--dir", dir)
	for _, n := range status(t, dir).Nodes {
		if n.Alive || n.PID != 0 {
			t.Errorf("%s still running after down: %+v", n.Name, n)
		}
	}
	t.Logf("total: %v", time.Since(start))
}
