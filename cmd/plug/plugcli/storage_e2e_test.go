package plugcli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plugchain/plug/chain/boltcheck"
)

// runningNode is a `plug node start` process of a test.
type runningNode struct {
	cmd    *exec.Cmd
	url    string
	logs   *lockedBuffer
	exited chan error
}

// startNode starts `plug node start --home home` and waits for its gateway
// address; it fails the test if the node exits first.
func startNode(t *testing.T, home string) *runningNode {
	t.Helper()
	cmd := exec.Command(plugBin, "node", "start", "--home", home, "--log-level", "warn")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	n := &runningNode{cmd: cmd, logs: &lockedBuffer{}, exited: make(chan error, 1)}
	cmd.Stderr = n.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	})
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "http:" {
				urlc <- f[1]
			}
		}
		n.exited <- cmd.Wait()
	}()
	select {
	case n.url = <-urlc:
	case err := <-n.exited:
		t.Fatalf("node exited at start: %v\n%s", err, n.logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("node printed no http address:\n%s", n.logs.String())
	}
	return n
}

// stop sends SIGTERM and waits for a clean exit.
func (n *runningNode) stop(t *testing.T) {
	t.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-n.exited:
		if err != nil {
			t.Fatalf("node exit: %v\n%s", err, n.logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("node did not stop:\n%s", n.logs.String())
	}
}

// TestDamagedDatabasesE2E is issue 15's done-when (4) with the real binary: a
// node home with blocks, stopped; (a) state.db truncated, (b) random bytes over
// pages of chain.db in use. Each time `plug node start` exits 1 within seconds
// with one line on stderr that names the file and the repair and no goroutine
// dump, `plug node check` reports the fault, and after `plug node resync` the
// node starts.
func TestDamagedDatabasesE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	home := t.TempDir()
	env := []string{"PLUG_HOME=" + home}
	kb := []string{"--keyring-backend", "test"}
	ok(t, nil, env, "keys", "add", "admin", "-o", "json", "--keyring-backend", "test")
	ok(t, nil, env, "init", "--chain-id", "dmg-1", "--validator", "--moniker", "v1", "-o", "json",
		"--http-listen", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--keyring-backend", "test")
	ok(t, nil, env, "genesis", "add-asset", "--name", "USD", "--issuer", "admin", "--decimals", "2")

	n := startNode(t, home)
	var tx struct {
		Status string `json:"status"`
		Height uint64 `json:"height"`
	}
	ok(t, &tx, env, append([]string{"tx", "issue", "--from", "admin", "--asset", "USD", "--to", "admin", "--amount", "5", "--wait", "-o", "json", "--node", n.url}, kb...)...)
	if tx.Status != "ok" {
		t.Fatalf("issue: %+v", tx)
	}
	n.stop(t)
	var check struct {
		OK     bool    `json:"ok"`
		Height *uint64 `json:"height"`
		Files  []struct {
			File     string   `json:"file"`
			Problems []string `json:"problems"`
		} `json:"files"`
	}
	ok(t, &check, env, "node", "check", "--home", home, "-o", "json")
	if !check.OK || check.Height == nil || *check.Height < tx.Height {
		t.Fatalf("check of a sound home: %+v", check)
	}
	backup := t.TempDir()
	for _, f := range []string{"state.db", "chain.db"} {
		b, err := os.ReadFile(filepath.Join(home, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(backup, f), b, 0o600)
	}

	for _, c := range []struct {
		file   string
		damage func(path string)
	}{
		{"state.db", func(path string) {
			in, err := boltcheck.ReadInfo(path)
			if err != nil || in.Err != nil {
				t.Fatal(err, in.Err)
			}
			if err := os.Truncate(path, in.Need/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"chain.db", func(path string) { randomPages(t, path, 4) }},
	} {
		path := filepath.Join(home, c.file)
		for _, f := range []string{"state.db", "chain.db"} {
			b, _ := os.ReadFile(filepath.Join(backup, f))
			os.WriteFile(filepath.Join(home, f), b, 0o600)
		}
		c.damage(path)

		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		start := exec.CommandContext(ctx, plugBin, "node", "start", "--home", home, "--log-level", "warn")
		var stderr lockedBuffer
		start.Stderr = &stderr
		began := time.Now()
		err := start.Run()
		took := time.Since(began)
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || took > 10*time.Second {
			t.Fatalf("%s damaged: node start gave %v after %v, want exit code 1 within seconds\n%s", c.file, err, took, stderr.String())
		}
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "\n") || strings.Contains(msg, "goroutine ") || !strings.HasPrefix(msg, "plug: "+path+" is ") ||
			!strings.Contains(msg, "backup") || !strings.Contains(msg, "plug node resync --home "+home) {
			t.Fatalf("%s damaged: stderr is not one line naming the file and the repair:\n%s", c.file, msg)
		}

		r := plug(t, env, "node", "check", "--home", home, "-o", "json")
		if r.code != 1 || json.Unmarshal([]byte(r.stdout), &check) != nil || check.OK {
			t.Fatalf("%s damaged: check exit %d\n%s\n%s", c.file, r.code, r.stdout, r.stderr)
		}
		for _, f := range check.Files {
			if (f.File == c.file) != (len(f.Problems) > 0) {
				t.Fatalf("%s damaged: check reports %+v", c.file, check.Files)
			}
		}
		r = plug(t, env, "node", "check", "--home", home)
		if r.code != 1 || !strings.Contains(r.stdout, c.file+": DAMAGED") {
			t.Fatalf("%s damaged: check text:\n%s", c.file, r.stdout)
		}

		var rs struct {
			MovedTo string   `json:"moved_to"`
			Moved   []string `json:"moved"`
		}
		ok(t, &rs, env, "node", "resync", "--home", home, "-o", "json")
		if len(rs.Moved) != 2 || !strings.HasPrefix(rs.MovedTo, filepath.Join(home, "corrupt-")) {
			t.Fatalf("resync: %+v", rs)
		}
		if _, err := os.Stat(filepath.Join(rs.MovedTo, c.file)); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(rs.MovedTo) // the next resync of this test may fall in the same second
		n := startNode(t, home)
		fails(t, "stop it first", env, "node", "resync", "--home", home)
		n.stop(t)
		ok(t, nil, env, "node", "check", "--home", home)
	}
}

// randomPages writes random bytes over count leaf or branch pages of the bbolt
// file at path (pages its buckets use, not free ones).
func randomPages(t *testing.T, path string, count int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	var used []int
	db.View(func(tx *bolt.Tx) error {
		for id := 2; ; id++ {
			p, err := tx.Page(id)
			if err != nil || p == nil {
				return nil
			}
			if p.Type == "leaf" || p.Type == "branch" {
				used = append(used, id)
			}
		}
	})
	db.Close()
	if len(used) == 0 {
		t.Fatal("no pages in use")
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ps := os.Getpagesize()
	junk := make([]byte, ps)
	rng := rand.New(rand.NewPCG(15, 4))
	for range count {
		for i := range junk {
			junk[i] = byte(rng.Uint32())
		}
		if _, err := f.WriteAt(junk, int64(used[rng.IntN(len(used))]*ps)); err != nil {
			t.Fatal(err)
		}
	}
}
