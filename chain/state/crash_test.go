package state

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/hash"
)

const crashChildEnv = "PLUG_STATE_CRASH_CHILD"

// crashChild commits versions forever on the store at path, printing each one
// after Commit returns. The parent kills it with SIGKILL.
func crashChild(path string) {
	s, err := Open(path)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	for {
		v := s.Version() + 1
		rng := rand.New(rand.NewPCG(v, 7))
		var ch []Change
		for i := 0; i < 300; i++ {
			k := fmt.Sprintf("key/%d", rng.IntN(5000))
			switch rng.IntN(10) {
			case 0:
				ch = append(ch, Change{Key: k, Delete: true})
			case 1: // big values use overflow pages
				ch = append(ch, Change{Key: k, Value: make([]byte, 5000+rng.IntN(10000))})
			default:
				ch = append(ch, Change{Key: k, Value: fmt.Appendf(nil, "%d-%d", v, i)})
			}
		}
		b, err := s.Stage(ch)
		if err == nil {
			err = s.Commit(b)
		}
		if err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		// One write(2) per line: what reaches the pipe was committed.
		os.Stdout.WriteString(fmt.Sprintf("committed %d %s\n", b.Version(), b.Root()))
	}
}

func TestCrashRecovery(t *testing.T) {
	if p := os.Getenv(crashChildEnv); p != "" {
		crashChild(p)
		return
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := filepath.Join(t.TempDir(), "state.db")
	rng := rand.New(rand.NewPCG(2024, 11))
	reported := map[uint64]hash.Hash{}
	var last uint64
	for round := 0; round < 4; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashRecovery$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var (
			mu    sync.Mutex
			lines []string
			first = make(chan struct{})
			done  = make(chan struct{})
		)
		go func() {
			defer close(done)
			sc := bufio.NewScanner(out)
			once := sync.OnceFunc(func() { close(first) })
			for sc.Scan() {
				mu.Lock()
				lines = append(lines, sc.Text())
				mu.Unlock()
				once()
			}
			once()
		}()
		<-first
		time.Sleep(time.Duration(5+rng.IntN(400)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-done
		cmd.Wait()

		n := 0
		for _, l := range lines {
			var v uint64
			var root string
			if _, err := fmt.Sscanf(l, "committed %d %s", &v, &root); err != nil {
				if strings.HasPrefix(l, "error") {
					t.Fatalf("child: %s", l)
				}
				continue
			}
			h, err := hash.Parse(root)
			if err != nil {
				t.Fatal(err)
			}
			reported[v], last = h, v
			n++
		}
		s, err := Open(path)
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		got := s.Version()
		t.Logf("round %d: child reported %d commits, last %d; store at version %d", round, n, last, got)
		if got < last || got > last+1 {
			s.Close()
			t.Fatalf("round %d: store at version %d, child reported %d", round, got, last)
		}
		for v, want := range reported {
			if r, err := s.RootAt(v); err != nil || r != want {
				s.Close()
				t.Fatalf("round %d: root of version %d is %s (%v), child reported %s", round, v, r, err, want)
			}
		}
		// The flat view agrees with the tree, and the store still commits.
		for i := 0; i < 5000; i += 97 {
			k := fmt.Sprintf("key/%d", i)
			a, aok, err1 := s.Get(k)
			b, bok, err2 := s.GetAt(got, k)
			if err1 != nil || err2 != nil || aok != bok || string(a) != string(b) {
				s.Close()
				t.Fatalf("round %d: Get and GetAt differ on %s: %v %v", round, k, err1, err2)
			}
		}
		b, err := s.Stage([]Change{{Key: fmt.Sprintf("after-crash/%d", round), Value: []byte("ok")}})
		if err == nil {
			err = s.Commit(b)
		}
		if err != nil {
			s.Close()
			t.Fatalf("round %d: commit after crash: %v", round, err)
		}
		reported[b.Version()], last = b.Root(), b.Version()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
