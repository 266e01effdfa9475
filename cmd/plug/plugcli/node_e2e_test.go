package plugcli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plugchain/plug/testnet"
)

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestNodeE2E runs the operator's path with the real binary: keys → init →
// genesis → node start (a background process) → tx --wait → query --prove →
// SIGTERM and a clean exit.
func TestNodeE2E(t *testing.T) {
	home := t.TempDir()
	env := []string{"PLUG_HOME=" + home}
	kb := []string{"--keyring-backend", "test"}
	run := func(v any, args ...string) result { return ok(t, v, env, append(args, kb...)...) }

	var admin, bob keyOut
	run(&admin, "keys", "add", "admin", "-o", "json")
	run(&bob, "keys", "add", "bob", "-o", "json")

	var in struct {
		ChainID        string `json:"chain_id"`
		Admin          string `json:"admin"`
		GenesisWritten bool   `json:"genesis_written"`
	}
	run(&in, "init", "--chain-id", "e2e-1", "--validator", "--moniker", "v1", "-o", "json",
		"--http-listen", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0")
	if in.ChainID != "e2e-1" || in.Admin != admin.Address || !in.GenesisWritten {
		t.Fatalf("init: %+v", in)
	}
	fails(t, "already a node home", env, append([]string{"init", "--chain-id", "e2e-1", "--validator"}, kb...)...)
	run(nil, "genesis", "add-asset", "--name", "USD", "--issuer", "admin", "--decimals", "2")
	r := plug(t, env, "genesis", "add-asset", "--name", "EUR", "--issuer", "nobody")
	if r.code != 1 || !strings.Contains(r.stderr, `no role "nobody"`) || !strings.Contains(r.stderr, "genesis.json (after the edit):") {
		t.Fatalf("genesis error has no position: %s", r.stderr)
	}
	var gv map[string]any
	ok(t, &gv, env, "genesis", "validate", "-o", "json")
	if gv["valid"] != true || gv["assets"].(float64) != 2 {
		t.Fatalf("validate: %v", gv)
	}

	// Start the node as a real process and read its gateway address.
	cmd := exec.Command(plugBin, "node", "start", "--home", home, "--log-level", "warn")
	cmd.Env = append(os.Environ(), "PLUG_HOME="+home)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var out lockedBuffer
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			out.Write([]byte(line + "\n"))
			if f := strings.Fields(line); len(f) == 2 && f[0] == "http:" {
				urlc <- f[1]
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	})
	var url string
	select {
	case url = <-urlc:
	case err := <-exited:
		t.Fatalf("node exited at start: %v\n%s\n%s", err, out.String(), logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("node printed no http address:\n%s\n%s", out.String(), logs.String())
	}
	node := []string{"--node", url}

	var tx struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Height uint64 `json:"height"`
		Code   *int   `json:"code"`
		Error  string `json:"error"`
	}
	run(&tx, append([]string{"tx", "issue", "--from", "admin", "--asset", "USD", "--to", "bob", "--amount", "1000", "--wait", "-o", "json"}, node...)...)
	if tx.Status != "ok" || tx.Height == 0 || tx.Code == nil || *tx.Code != 0 {
		t.Fatalf("issue: %+v", tx)
	}
	run(&tx, append([]string{"tx", "transfer", "--from", "bob", "--to", admin.Address, "--asset", "USD", "--amount", "250", "--wait", "-o", "json"}, node...)...)
	if tx.Status != "ok" {
		t.Fatalf("transfer: %+v", tx)
	}
	// A failing transaction: exit code 1, the reason in the JSON result.
	r = fails(t, "insufficient funds", env, append(append([]string{"tx", "transfer", "--from", "bob", "--to", "admin",
		"--asset", "USD", "--amount", "5000", "--wait", "--output", "json"}, node...), kb...)...)
	if err := json.Unmarshal([]byte(r.stdout), &tx); err != nil || tx.Status != "failed" || tx.Height == 0 {
		t.Fatalf("failed transfer result: %v %+v", err, tx)
	}
	// Amounts with a point are whole units of the asset (USD has 2 decimals).
	var moved struct {
		Status  string `json:"status"`
		Amount  uint64 `json:"amount"`
		Display string `json:"display"`
	}
	run(&moved, append([]string{"tx", "transfer", "--from", "bob", "--to", "admin", "--asset", "USD", "--amount", "1.5", "--wait", "-o", "json"}, node...)...)
	if moved.Status != "ok" || moved.Amount != 150 || moved.Display != "1.50 USD" {
		t.Fatalf("transfer of 1.5 USD: %+v", moved)
	}
	fails(t, "has 3 digits after the point; the asset has 2 decimals", env,
		append(append([]string{"tx", "transfer", "--from", "bob", "--to", "admin", "--asset", "USD", "--amount", "1.234"}, node...), kb...)...)
	if r := run(nil, append([]string{"tx", "transfer", "--from", "bob", "--to", "admin", "--asset", "USD", "--amount", "0.01", "--wait"}, node...)...); !strings.Contains(r.stdout, "0.01 USD (1)") {
		t.Fatalf("transfer text shows no amount:\n%s", r.stdout)
	}

	var bal struct {
		Balance  uint64 `json:"balance"`
		Display  string `json:"display"`
		Verified bool   `json:"verified"`
		Height   uint64 `json:"height"`
	}
	run(&bal, append([]string{"query", "balance", "--account", "bob", "--asset", "USD", "--prove", "-o", "json"}, node...)...)
	if bal.Balance != 599 || bal.Display != "5.99 USD" || !bal.Verified {
		t.Fatalf("bob's balance: %+v", bal)
	}
	if r := run(nil, append([]string{"query", "balance", "--account", "bob", "--asset", "USD"}, node...)...); !strings.Contains(r.stdout, "5.99 USD (599)") {
		t.Fatalf("balance text:\n%s", r.stdout)
	}
	var st struct {
		ChainID string `json:"chain_id"`
		Height  uint64 `json:"height"`
	}
	run(&st, append([]string{"query", "status", "-o", "json"}, node...)...)
	if st.ChainID != "e2e-1" || st.Height < bal.Height {
		t.Fatalf("status: %+v", st)
	}
	// Text outputs name the keyring's accounts next to their addresses.
	if r := run(nil, append([]string{"query", "tx", tx.ID}, node...)...); !strings.Contains(r.stdout, "bob ("+bob.Address[:8]) {
		t.Fatalf("query tx names no signer:\n%s", r.stdout)
	}
	if r := run(nil, append([]string{"query", "block", strconv.FormatUint(tx.Height, 10)}, node...)...); !strings.Contains(r.stdout, "bob ("+bob.Address[:8]) {
		t.Fatalf("query block names no signer:\n%s", r.stdout)
	}
	if r := run(nil, append([]string{"tx", "pending"}, node...)...); !strings.Contains(r.stdout, "bob ("+bob.Address[:8]) && !strings.Contains(r.stdout, "no transactions") {
		t.Fatalf("tx pending names no signer:\n%s", r.stdout)
	}
	checkQueryTxs(t, env, node)
	fails(t, "stop it first", env, "node", "reindex", "--home", home)
	fails(t, "wrong", env, append([]string{"query", "balance", "--account", "bob", "--asset", "USD", "--chain", "wrong", "--prove"}, node...)...)

	// --testnet DIR: endpoints from DIR/testnet.json, keys from DIR/keys (test backend).
	tn := t.TempDir()
	m := &testnet.Manifest{Dir: tn, Chains: []testnet.Chain{
		{ChainID: "other", Nodes: []testnet.Node{{Name: "o1", HTTP: "http://127.0.0.1:1"}}},
		{ChainID: "e2e-1", Nodes: []testnet.Node{{Name: "v1", Home: home, HTTP: url, PID: cmd.Process.Pid, Validator: true}}},
	}}
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(tn, testnet.KeyringDir), 0o700)
	for _, k := range []string{"admin", "bob"} {
		b, _ := os.ReadFile(filepath.Join(home, "keys", k+".key"))
		os.WriteFile(filepath.Join(tn, testnet.KeyringDir, k+".key"), b, 0o600)
	}
	noHome := []string{"PLUG_HOME=" + t.TempDir()}
	ok(t, &tx, noHome, "tx", "issue", "--testnet", tn, "--chain", "e2e-1", "--from", "admin", "--asset", "USD",
		"--to", "bob", "--amount", "1000", "--wait", "-o", "json")
	if tx.Status != "ok" {
		t.Fatalf("issue via --testnet: %+v", tx)
	}
	ok(t, &bal, noHome, "query", "balance", "--testnet", tn, "--chain", "e2e-1", "--account", "bob", "--asset", "USD", "--output", "json")
	if bal.Balance != 1599 || bal.Verified {
		t.Fatalf("balance via --testnet: %+v", bal)
	}
	fails(t, "pick one with --chain", noHome, "query", "status", "--testnet", tn)
	fails(t, "no testnet", noHome, "query", "status", "--testnet", t.TempDir())

	// SIGTERM: a clean stop with exit code 0.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("node exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("node did not stop after SIGTERM:\n%s", logs.String())
	}
	if !strings.Contains(out.String(), "node stopped") {
		t.Fatalf("stdout: %s", out.String())
	}
	if _, err := os.Stat(filepath.Join(home, "chain.db")); err != nil {
		t.Fatal(err)
	}
	checkReindex(t, env, home)
}

func TestNodeCommandsHelp(t *testing.T) {
	env := []string{"PLUG_HOME=" + t.TempDir()}
	app := newApp(nil, nil)
	var walk func(path []string, cs []*cli.Command)
	walk = func(path []string, cs []*cli.Command) {
		for _, c := range cs {
			p := append(append([]string{}, path...), c.Name)
			switch p[0] {
			case "init", "genesis", "node", "tx", "query":
			default:
				continue
			}
			if len(c.Subcommands) > 0 {
				walk(p, c.Subcommands)
				continue
			}
			r := ok(t, nil, env, append(p, "--help")...)
			if !strings.Contains(r.stdout, "USAGE:") || !strings.Contains(r.stdout, "plug "+strings.Join(p, " ")) {
				t.Errorf("plug %v --help:\n%s", p, r.stdout)
			}
		}
	}
	walk(nil, app.Commands)
	fails(t, "no node to talk to", env, "query", "status")
	fails(t, "missing --from", env, "tx", "transfer", "--node", "127.0.0.1:1", "--to", "bob")
	fails(t, "missing --chain-id", env, "init")
}
