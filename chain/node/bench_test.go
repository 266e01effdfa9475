package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/builtin"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/tx"
)

// BenchmarkChainThroughput drives four validators (real libp2p on 127.0.0.1, real
// bbolt files, all in this process and so on this machine's two cores) with signed
// transfers from many senders, submitted round-robin to the four nodes, and reports
// finalized tx/s and the p50/p99 latency from submission to commit. Every validator
// verifies every signature once, at admission. The machine's single-core and
// batched ed25519 verification rates are reported beside it as the bound.
func BenchmarkChainThroughput(b *testing.B) {
	// burst: every transaction is submitted at once; the rate is the capacity and
	// the latency includes queueing behind the whole burst. paced: submissions at a
	// fixed offered rate below capacity, the latency a client sees in steady state.
	b.Run("burst", func(b *testing.B) { chainThroughput(b, 0, 1) })
	b.Run("burst-batch100", func(b *testing.B) { chainThroughput(b, 0, 100) })
	b.Run("paced-3000", func(b *testing.B) { chainThroughput(b, 3000, 1) })
}

// chainThroughput submits at rate tx/s (0: all at once), one transaction per
// call, or batch at a time with Node.SubmitBatch.
func chainThroughput(b *testing.B, rate, batch int) {
	const validators, senders = 4, 400
	perSender := 25
	if b.N > 1 {
		perSender = 50
	}
	total := senders * perSender

	var pubs []crypto.PublicKey
	var vkeys []crypto.PrivateKey
	for i := 0; i < validators; i++ {
		k := benchKey(b, uint64(i+1))
		vkeys = append(vkeys, k)
		pubs = append(pubs, k.Public())
	}
	admin := benchKey(b, 1000)
	gen := genesis.Default("bench", pubs, admin.Public().Address())
	usd := genesis.Asset{Name: "USD", Issuer: "admin", Balances: map[string]uint64{}}
	skeys := make([]crypto.PrivateKey, senders)
	for i := range skeys {
		skeys[i] = benchKey(b, uint64(10_000+i))
		usd.Balances[skeys[i].Public().Address().String()] = 1_000_000
	}
	gen.Assets = append(gen.Assets, usd)

	// Pre-sign every transaction: signing is the client's cost, not the chain's.
	reg := builtin.Registry()
	txs := make([]*tx.Tx, 0, total)
	ids := make([]hash.Hash, 0, total)
	for n := 0; n < perSender; n++ {
		for s := 0; s < senders; s++ {
			to := skeys[(s+1+n)%senders].Public().Address()
			x, err := tx.New(reg, "bench", &asset.Transfer{Asset: "USD", From: skeys[s].Public().Address(), To: to, Amount: 1},
				tx.Signer{Key: skeys[s].Public(), Nonce: uint64(n)})
			if err != nil {
				b.Fatal(err)
			}
			if err := x.Sign(skeys[s]); err != nil {
				b.Fatal(err)
			}
			// As a gateway would receive it: decoded from the wire.
			raw, _ := x.Encode()
			if x, err = tx.Decode(raw); err != nil {
				b.Fatal(err)
			}
			id, _ := x.ID()
			txs, ids = append(txs, x), append(ids, id)
		}
	}

	committed := make(map[hash.Hash]time.Time, total)
	var mu sync.Mutex
	done, closed := make(chan struct{}), false
	// Node 0's commit hook times every transaction (the event stream may drop
	// events for a slow reader; the hook runs in the commit path itself).
	onCommit := func(blk *block.Block, receipts []exec.Receipt) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		for _, r := range receipts {
			if r.Code != exec.OK {
				b.Errorf("tx %s: %s", r.TxID.Short(), r.Error)
			}
			committed[r.TxID] = now
		}
		if len(committed) == total && !closed {
			closed = true
			close(done)
		}
	}
	nodes := make([]*Node, validators)
	var peers []string
	dir := b.TempDir()
	for i := range nodes {
		nd, err := New(Config{Name: fmt.Sprintf("v%d", i), Home: filepath.Join(dir, fmt.Sprint(i)), Genesis: gen, Key: vkeys[i],
			Validator: true, P2PListen: "/ip4/127.0.0.1/tcp/0", Peers: slices.Clone(peers), MaxBlockTxs: *benchBlockTxs,
			NoIndex: *benchNoIndex, Registry: builtin.Registry(), Models: builtin.Models()})
		if i == 0 {
			nd.cfg.OnCommit = onCommit
		}
		if err != nil {
			b.Fatal(err)
		}
		if err := nd.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		defer nd.Close()
		nodes[i] = nd
		peers = append(peers, nd.Addrs()[0])
	}
	for deadline := time.Now().Add(60 * time.Second); nodes[0].height() < 2; {
		if time.Now().After(deadline) {
			b.Fatal("the network did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}

	submitted := make([]time.Time, total)
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	if batch > 1 {
		// As client.SubmitBatch over POST /v1/txs: one call per batch, batches
		// round-robin over the nodes, busy answers resubmitted.
		for lo := 0; lo < total; lo += batch {
			hi := min(lo+batch, total)
			now := time.Now()
			for i := lo; i < hi; i++ {
				submitted[i] = now
			}
			for left := txs[lo:hi]; len(left) > 0; {
				_, errs := nodes[lo/batch%validators].SubmitBatch(context.Background(), left)
				var again []*tx.Tx
				for j, err := range errs {
					if isBusy(err) {
						again = append(again, left[j])
					} else if err != nil {
						b.Fatalf("submit: %v", err)
					}
				}
				if left = again; len(left) > 0 {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}
	}
	for i, x := range txs {
		if batch > 1 {
			break
		}
		if rate > 0 {
			if wait := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); wait > 0 {
				time.Sleep(wait)
			}
		}
		submitted[i] = time.Now()
		for {
			_, err := nodes[i%validators].Submit(context.Background(), x)
			if err == nil {
				break
			}
			if !isBusy(err) {
				b.Fatalf("submit %d: %v", i, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		mu.Lock()
		got := len(committed)
		mu.Unlock()
		for i, nd := range nodes {
			st := nd.Status()
			b.Logf("node %d: height %d round %d mempool %d peers %d", i, st.Height, st.Round, st.MempoolSize, st.Peers)
		}
		b.Fatalf("only %d of %d transactions committed", got, total)
	}
	elapsed, used := time.Since(start), cpuTime()-cpu0
	b.StopTimer()

	lat := make([]float64, total)
	mu.Lock()
	for i, id := range ids {
		lat[i] = committed[id].Sub(submitted[i]).Seconds() * 1000
	}
	mu.Unlock()
	slices.Sort(lat)
	b.ReportMetric(float64(total)/elapsed.Seconds(), "tx/s")
	b.ReportMetric(lat[len(lat)/2], "p50-ms")
	b.ReportMetric(lat[len(lat)*99/100], "p99-ms")
	b.ReportMetric(float64(nodes[0].height()), "blocks")
	// Below 1, the validators waited on timers or the network rather than on CPU.
	b.ReportMetric(used.Seconds()/elapsed.Seconds()/float64(runtime.GOMAXPROCS(0)), "cpu-busy")
	b.ReportMetric(verifyRate(), "bound-verify-sigs/s")
	b.ReportMetric(batchVerifyRate(), "bound-batch-verify-sigs/s")
}

// cpuTime returns this process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func isBusy(err error) bool { return err != nil && bytes.Contains([]byte(err.Error()), []byte("busy")) }

func benchKey(b *testing.B, i uint64) crypto.PrivateKey {
	var seed [32]byte
	binary.BigEndian.PutUint64(seed[:], i)
	k, err := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(seed[:]))
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// verifyRate measures this machine's ed25519 verification rate with PLUG's single
// verifier on one goroutine, for 300 ms: the physical bound the chain works under.
func verifyRate() float64 {
	var seed [32]byte
	k, _ := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(seed[:]))
	msg := []byte("bound")
	sig, _ := k.Sign(msg)
	n, start := 0, time.Now()
	for time.Since(start) < 300*time.Millisecond {
		_ = crypto.Verify(k.Public(), msg, sig)
		n++
	}
	return float64(n) / time.Since(start).Seconds()
}

// batchVerifyRate measures this machine's batched ed25519 verification rate
// (crypto.VerifyBatch of 1,024 signatures by distinct keys, on all cores) for
// 300 ms: every validator checks every transaction once, so the chain can never
// finalize more than this rate ÷ validators transfers per second.
func batchVerifyRate() float64 {
	items := make([]crypto.Item, 1024)
	for i := range items {
		var seed [32]byte
		binary.BigEndian.PutUint64(seed[:], uint64(i))
		k, _ := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(seed[:]))
		msg := binary.BigEndian.AppendUint64([]byte("bound"), uint64(i))
		sig, _ := k.Sign(msg)
		items[i] = crypto.Item{Pub: k.Public(), Msg: msg, Sig: sig}
	}
	n, start := 0, time.Now()
	for time.Since(start) < 300*time.Millisecond {
		crypto.VerifyBatch(items)
		n += len(items)
	}
	return float64(n) / time.Since(start).Seconds()
}

var benchBlockTxs = flag.Int("chain.blocktxs", 0, "BenchmarkChainThroughput: MaxBlockTxs of the validators (0: the default)")

var benchNoIndex = flag.Bool("chain.noindex", false, "BenchmarkChainThroughput: validators keep no transaction index (index.db)")
