package testnet_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/plugchain/plug/testnet"
)

// heightSampler polls the highest height of some nodes every 200 ms and
// records the longest time the chain went without a new block.
type heightSampler struct {
	mu      sync.Mutex
	last    uint64
	lastAt  time.Time
	maxGap  time.Duration
	gapAt   uint64 // the height after which the longest gap began
	samples int
	stop    chan struct{}
	done    chan struct{}
}

func sampleHeights(urls []string) *heightSampler {
	s := &heightSampler{lastAt: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			var h uint64
			for _, u := range urls {
				h = max(h, nodeHeight(u))
			}
			now := time.Now()
			s.mu.Lock()
			s.samples++
			if gap := now.Sub(s.lastAt); gap > s.maxGap {
				s.maxGap, s.gapAt = gap, s.last
			}
			if h > s.last {
				s.last, s.lastAt = h, now
			}
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *heightSampler) height() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func (s *heightSampler) finish() (maxGap time.Duration, at uint64, samples int) {
	close(s.stop)
	<-s.done
	return s.maxGap, s.gapAt, s.samples
}

var quickHTTP = &http.Client{Timeout: time.Second}

// nodeHeight is the height a node's gateway reports, 0 if it does not answer.
func nodeHeight(base string) uint64 {
	var st struct {
		Height uint64 `json:"height"`
	}
	if getJSONTest(base+"/v1/status", &st) != nil {
		return 0
	}
	return st.Height
}

func getJSONTest(url string, v any) error {
	resp, err := quickHTTP.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// signedBy reports whether the block at height h, as the node at base holds
// it, was proposed by addr or carries addr's vote in its certificate.
func signedBy(base string, h uint64, addr string) (bool, error) {
	var b struct {
		Block struct {
			Header struct {
				Proposer string `json:"proposer"`
			} `json:"header"`
		} `json:"block"`
		Certificate struct {
			Votes []struct {
				Validator string `json:"validator"`
			} `json:"votes"`
		} `json:"certificate"`
	}
	if err := getJSONTest(fmt.Sprintf("%s/v1/blocks/%d", base, h), &b); err != nil {
		return false, err
	}
	if b.Block.Header.Proposer == addr {
		return true, nil
	}
	for _, v := range b.Certificate.Votes {
		if v.Validator == addr {
			return true, nil
		}
	}
	return false, nil
}

// TestMoveValidatorWithoutDowntime is the zero-downtime migration of
// docs/operator.md on real processes: a node added to a running 4-validator
// chain waits, refused, at height 0; val-4 moves all its power to the new
// node's key and is stopped; the chain never stops deciding, the new node
// catches up and signs without any process being restarted, and then moves
// the power back, as the validator role it received lets it.
func TestMoveValidatorWithoutDowntime(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 4-node testnet; skipped with -short")
	}
	start := time.Now()
	dir := testnetDir(t)
	var up testnet.Report
	plug(t, &up, "testnet", "up", "--dir", dir, "--chains", "1", "--validators", "4", "--detach", "--output", "json")
	nodes := up.Chains[0].Nodes
	if len(nodes) != 4 {
		t.Fatalf("up: %+v", up)
	}
	old := nodes[3].Name // alpha-val-4, the validator that moves
	var others []string  // gateways of val-1..3, which stay
	for _, n := range nodes[:3] {
		others = append(others, n.HTTP)
	}
	heights := sampleHeights(others)
	t.Logf("up: %v", time.Since(start))

	const name = "alpha-new-1"
	var added testnet.AddedNode
	plug(t, &added, "testnet", "add-node", "--dir", dir, "--output", "json", name)
	if added.Name != name || added.ChainID != "alpha" || added.PeerID == "" || added.PublicKey == "" || added.PID == 0 || !added.Added {
		t.Fatalf("add-node: %+v", added)
	}
	if !slices.Equal(added.Peers, []string{"alpha-val-1", "alpha-val-2", "alpha-val-3", "alpha-val-4"}) {
		t.Fatalf("add-node dials %v, want the four validators", added.Peers)
	}
	var m testnet.Manifest
	b, err := os.ReadFile(filepath.Join(dir, testnet.ManifestFile))
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil || len(m.Chains[0].Nodes) != 5 || m.Chains[0].Nodes[4].Name != name {
		t.Fatalf("manifest after add-node: %v %+v", err, m)
	}

	// Not in the set and on no allow list: refused, it stays at height 0,
	// backing off quietly.
	const refusedFor = 10 * time.Second
	time.Sleep(refusedFor)
	if h := nodeHeight(added.HTTP); h != 0 {
		t.Fatalf("%s reached height %d before holding power: a validator admitted it", name, h)
	}
	logLines := func() int {
		b, _ := os.ReadFile(filepath.Join(added.Home, testnet.LogFile))
		return bytes.Count(b, []byte("\n"))
	}
	refusedLines := logLines()
	t.Logf("%s refused for %v: %d log lines (backoff steps included); chain at height %d", name, refusedFor, refusedLines, heights.height())
	// Startup (~10 lines) and one line per backoff step per validator (4 x 7).
	if refusedLines > 60 {
		t.Errorf("%s logged %d lines in %v while refused", name, refusedLines, refusedFor)
	}

	// val-4 moves all its power to the new node's key: a real transaction
	// signed by val-4's key.
	var res struct {
		Status string `json:"status"`
		Height uint64 `json:"height"`
	}
	plug(t, &res, "tx", "transfer-power", "--testnet", dir, "--from", old, "--to", name,
		"--amount", "100", "--wait", "--output", "json")
	if res.Status != "ok" {
		t.Fatalf("transfer-power to %s: %+v", name, res)
	}
	moved := time.Now()
	t.Logf("power moved at height %d: %v", res.Height, time.Since(start))
	plug(t, nil, "testnet", "kill", "--dir", dir, old)

	// The new node is admitted at its next retry (≤ 10 s), syncs from 0 and
	// keeps up.
	deadline := time.Now().Add(40 * time.Second)
	for {
		mine, theirs := nodeHeight(added.HTTP), heights.height()
		if mine > res.Height && mine+3 >= theirs {
			t.Logf("%s at height %d, the others at %d, %v after the transfer", name, mine, theirs, time.Since(moved).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s at height %d, the others at %d, 40 s after the transfer", name, mine, theirs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// It votes: its key signs a block's certificate (or proposes one).
	from := res.Height + 1
	eventually(t, name+" signing", func() (bool, string) {
		to := nodeHeight(others[0])
		for h := from; h <= to; h++ {
			ok, err := signedBy(others[0], h, added.Address)
			if err != nil {
				return false, err.Error()
			}
			if ok {
				t.Logf("%s signed block %d, %v after the transfer", name, h, time.Since(moved).Round(time.Millisecond))
				return true, ""
			}
			from = h + 1
		}
		return false, fmt.Sprintf("no certificate up to %d carries %s's vote", to, added.Address)
	})
	var st testnet.Report
	plug(t, &st, "testnet", "status", "--dir", dir, "--output", "json")
	for _, n := range st.Chains[0].Nodes {
		if n.Name == name && (!n.Validator || !n.Alive) {
			t.Fatalf("status of %s: %+v", name, n)
		}
	}

	// The validator role came with the power: the new key moves it back
	// (to val-4's key, whose node is down: the other three still hold 3/4).
	plug(t, &res, "tx", "transfer-power", "--testnet", dir, "--from", name, "--to", old,
		"--amount", "100", "--wait", "--output", "json")
	if res.Status != "ok" {
		t.Fatalf("transfer-power back from %s: %+v", name, res)
	}
	back := res.Height
	eventually(t, "blocks after the power moved back", func() (bool, string) {
		return heights.height() >= back+5, fmt.Sprintf("height %d, moved back at %d", heights.height(), back)
	})

	gap, at, samples := heights.finish()
	t.Logf("longest time without a new block: %v (after height %d; %d samples every 200 ms); total %v",
		gap.Round(time.Millisecond), at, samples, time.Since(start).Round(time.Second))
	if gap > 3*time.Second {
		t.Errorf("the chain went %v without a block after height %d", gap, at)
	}
}
