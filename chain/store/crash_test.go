package store_test

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

	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/store"
)

const crashChildEnv = "PLUG_STORE_CRASH_CHILD"

// crashChild saves blocks and consensus states forever on the store at path, the
// way a node does, and reports each height once both are saved.
func crashChild(path string) {
	s, err := store.Open(path)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	for {
		h := s.Height() + 1
		var prev hash.Hash
		if h > 1 {
			if prev, err = s.HashAt(h - 1); err != nil {
				fmt.Println("error", err)
				os.Exit(2)
			}
		}
		b, c, rs := makeBlock(h, prev, int(h%5))
		if err := s.SaveBlock(b, c, rs); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		st := &consensus.State{Height: h + 1, Step: consensus.StepPropose, LockedRound: -1, ValidRound: -1}
		if h%3 == 0 { // sometimes with a locked block, to exercise the blobs
			st.LockedRound, st.LockedID, st.LockedBlock = 0, b.Header.Hash(), make([]byte, 3000+int(h%7)*1000)
		}
		if err := s.SaveConsensus(st); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		// One write(2) per line: what reaches the pipe was saved.
		os.Stdout.WriteString(fmt.Sprintf("saved %d %s\n", h, b.Header.Hash()))
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
	path := filepath.Join(t.TempDir(), "chain.db")
	rng := rand.New(rand.NewPCG(2025, 3))
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
		time.Sleep(time.Duration(5+rng.IntN(300)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-done
		cmd.Wait()

		n := 0
		for _, l := range lines {
			var h uint64
			var id string
			if _, err := fmt.Sscanf(l, "saved %d %s", &h, &id); err != nil {
				if strings.HasPrefix(l, "error") {
					t.Fatalf("child: %s", l)
				}
				continue
			}
			hh, err := hash.Parse(id)
			if err != nil {
				t.Fatal(err)
			}
			reported[h], last = hh, h
			n++
		}
		s, err := store.Open(path)
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		got := s.Height()
		t.Logf("round %d: child reported %d blocks, last %d; store at height %d", round, n, last, got)
		if got < last || got > last+1 {
			s.Close()
			t.Fatalf("round %d: store at height %d, child reported %d", round, got, last)
		}
		for h, want := range reported {
			if id, err := s.HashAt(h); err != nil || id != want {
				s.Close()
				t.Fatalf("round %d: block %d is %s (%v), child reported %s", round, h, id.Short(), err, want.Short())
			}
		}
		for h := uint64(1); h <= got; h++ {
			checkBlock(t, s, h)
		}
		st, err := s.LoadConsensus()
		if err != nil || st == nil || st.Height < last+1 || st.Height > got+1 {
			s.Close()
			t.Fatalf("round %d: consensus state %+v (%v) after block %d", round, st, err, last)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
