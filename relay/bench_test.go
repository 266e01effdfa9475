package relay_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/node"
	"github.com/plugchain/plug/chain/node/nodetest"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/relay"
)

// BenchmarkDvP settles DvP trades between two chains of four validators each
// (real libp2p on 127.0.0.1, real bbolt files, every node with its HTTP
// gateway) and one relay that talks to them over HTTP — all in this process,
// so the eight validators and the relay share this machine's two cores. Each
// trade moves SEC on alpha (the coordinator) against USD on beta; the buyer
// prepares on beta, the relay does the rest: its decide on alpha prepares and
// commits the seller's leg (three chain transactions per trade;
// -dvp.coordprepare has the seller prepare on alpha too, four). A trade's
// latency runs from the submission of its prepares to the commit of its last
// finish (both legs final).
//
//   - stream: the relay runs; all trades are submitted at once.
//   - paced-50: the relay runs; trades are submitted at 50 per second, below
//     capacity: the latency a client sees in steady state.
//   - backlog: every trade is prepared while the relay is down; the relay then
//     starts from an empty db and clears them (what a restart after downtime
//     costs).
//   - paced-N, with -dvp.rate N: trades submitted at N per second, -dvp.trades
//     of them: whether the network sustains that rate, and the latency it
//     gives while it does.
func BenchmarkDvP(b *testing.B) {
	n := *dvpTrades
	b.Run("stream", func(b *testing.B) { benchDvP(b, n, 0, false) })
	b.Run("paced-50", func(b *testing.B) { benchDvP(b, n/2, 50, false) })
	b.Run("backlog", func(b *testing.B) { benchDvP(b, 2*n, 0, true) })
	if r := *dvpRate; r > 0 {
		b.Run(fmt.Sprintf("paced-%d", r), func(b *testing.B) { benchDvP(b, n, r, false) })
	}
}

var (
	dvpTrades       = flag.Int("dvp.trades", 1000, "trades per BenchmarkDvP run (backlog: twice as many)")
	dvpBlockTxs     = flag.Int("dvp.blocktxs", 0, "BenchmarkDvP: MaxBlockTxs of the validators (0: the default)")
	dvpCoordPrepare = flag.Bool("dvp.coordprepare", false, "BenchmarkDvP: the seller also prepares its leg on the coordinator (four chain transactions per trade, as before decides prepared the coordinator's legs)")
	dvpBatch        = flag.Int("dvp.batch", 0, "BenchmarkDvP: the relay's batch_steps (0: the default; 1: a transaction per step)")
	dvpRate         = flag.Int("dvp.rate", 0, "BenchmarkDvP: also run paced-N, -dvp.trades trades submitted at this many per second (0: not run)")
	dvpTimeline     = flag.Bool("dvp.timeline", false, "BenchmarkDvP: log every committed block (chain, height, ms since start, transactions by type)")
)

const benchParties = 200

func benchKey(i uint64) crypto.PrivateKey {
	var seed [32]byte
	binary.BigEndian.PutUint64(seed[:], i)
	k, err := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(seed[:]))
	if err != nil {
		panic(err)
	}
	return k
}

// benchNet is one chain of four in-process validators with their gateways.
type benchNet struct {
	id    string
	nodes []*node.Node
	urls  []string
	c     *client.Client
	// committed counts the transactions committed on this chain, and byType
	// them by type and outcome ("xchain/decide ok").
	committed int
	byType    map[string]int
}

// startBenchNet starts chain id with holders funded in assetName; onCommit
// hooks node 0's commits.
func startBenchNet(b *testing.B, id, assetName string, holders []crypto.PrivateKey, onCommit func(*block.Block, []exec.Receipt)) *benchNet {
	b.Helper()
	var vals []crypto.PrivateKey
	var pubs []crypto.PublicKey
	for i := 0; i < 4; i++ {
		k := key(fmt.Sprintf("%s/val-%d", id, i))
		vals, pubs = append(vals, k), append(pubs, k.Public())
	}
	gen := genesis.Default(id, pubs, addr(admin))
	for i := range gen.Roles {
		if gen.Roles[i].Name == app.RelayerRole {
			gen.Roles[i].Members = append(gen.Roles[i].Members, addr(relayer).String())
		}
	}
	bal := map[string]uint64{}
	for _, h := range holders {
		bal[addr(h).String()] = funds
	}
	gen.Assets = append(gen.Assets, genesis.Asset{Name: assetName, Issuer: "admin", Balances: bal})
	bn := &benchNet{id: id, byType: map[string]int{}}
	var peers []string
	for i, k := range vals {
		cfg := node.Config{Name: fmt.Sprintf("%s-val-%d", id, i+1), Genesis: gen, Key: k, Validator: true, Peers: slices.Clone(peers),
			MaxBlockTxs: *dvpBlockTxs, Registry: app.Registry(), Models: app.Models()}
		if i == 0 {
			cfg.OnCommit = onCommit
		}
		n, url := nodetest.Start(b, cfg)
		bn.nodes = append(bn.nodes, n)
		bn.urls = append(bn.urls, url)
		peers = append(peers, n.Addrs()[0])
	}
	var err error
	if bn.c, err = client.New(bn.urls, client.WithChainID(id)); err != nil {
		b.Fatal(err)
	}
	waitFor(b, 60*time.Second, "block 2 on "+id, func() bool {
		st, err := bn.c.Status(context.Background())
		return err == nil && st.Height >= 2
	})
	return bn
}

// submit hands t to node i%4, retrying while its mempool is busy.
func (n *benchNet) submit(b *testing.B, i int, t *tx.Tx) {
	for {
		_, err := n.nodes[i%len(n.nodes)].Submit(context.Background(), t)
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "busy") {
			b.Fatalf("%s: submit: %v", n.id, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func benchDvP(b *testing.B, trades, rate int, backlog bool) {
	sellers := make([]crypto.PrivateKey, benchParties)
	buyers := make([]crypto.PrivateKey, benchParties)
	for i := range sellers {
		sellers[i], buyers[i] = benchKey(uint64(1000+i)), benchKey(uint64(5000+i))
	}

	// finished[id] counts the finished legs of a trade (the decide finishes the
	// coordinator's, a finish the other); final[id] is when the second one
	// committed. Node 0 of each chain reports its commits.
	var mu sync.Mutex
	finished := map[hash.Hash]int{}
	final := make(map[hash.Hash]time.Time, trades)
	done := make(chan struct{})
	var alpha, beta *benchNet
	var start time.Time
	hook := func(net **benchNet) func(*block.Block, []exec.Receipt) {
		return func(blk *block.Block, rs []exec.Receipt) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if *dvpTimeline && *net != nil && !start.IsZero() {
				types := map[string]int{}
				for _, t := range blk.Txs {
					types[t.Body.Type]++
				}
				// Straight to stderr: the benchmark's log keeps ten lines only.
				fmt.Fprintf(os.Stderr, "%s %d at %d ms: %v\n", (*net).id, blk.Header.Height, now.Sub(start).Milliseconds(), types)
			}
			if *net != nil {
				(*net).committed += len(rs)
				for i, t := range blk.Txs {
					k := t.Body.Type + " " + rs[i].Code.String()
					if (*net).byType[k]++; (*net).byType[k] == 1 && rs[i].Code != exec.OK {
						b.Logf("%s: first %s: %s", (*net).id, k, rs[i].Error)
					}
				}
			}
			for i, t := range blk.Txs {
				switch t.Body.Type {
				case crosschain.TypeFinish, crosschain.TypeDecide, crosschain.TypeBatch:
				default:
					continue
				}
				if rs[i].Code != exec.OK {
					continue
				}
				tr, err := relay.Registry().Decode(t.Body.Type, t.Body.Payload)
				if err != nil {
					continue
				}
				for _, f := range crosschain.FinishedLegs(tr, rs[i].Skipped) {
					if f.Legs == 0 {
						continue
					}
					if finished[f.ID] += f.Legs; finished[f.ID] == 2 {
						final[f.ID] = now
						if len(final) == trades {
							close(done)
						}
					}
				}
			}
		}
	}
	alpha = startBenchNet(b, "alpha", "SEC", sellers, hook(&alpha))
	beta = startBenchNet(b, "beta", "USD", buyers, hook(&beta))
	ctx := context.Background()
	for _, p := range [][2]*benchNet{{alpha, beta}, {beta, alpha}} {
		if _, err := relay.CreateClient(ctx, p[0].c, p[1].c, p[0].id, p[1].id, admin, 1); err != nil {
			b.Fatal(err)
		}
	}

	// Pre-sign every prepare: signing is the parties' cost, not the network's.
	reg := relay.Registry()
	type pair struct{ a, b *tx.Tx }
	txs := make([]pair, trades)
	ids := make([]hash.Hash, trades)
	deadline := time.Now().Add(10 * time.Minute).UnixMilli()
	for i := range txs {
		p, n := i%benchParties, uint64(i/benchParties)
		s, bu := sellers[p], buyers[p]
		x := crosschain.XTx{Legs: []crosschain.Leg{
			{Chain: "alpha", Asset: "SEC", From: addr(s), To: addr(bu), Amount: 1},
			{Chain: "beta", Asset: "USD", From: addr(bu), To: addr(s), Amount: 2},
		}, Coordinator: "alpha", Deadline: deadline, Nonce: uint64(i + 1)}
		sg, err := crosschain.NewSigned(x, s, bu)
		if err != nil {
			b.Fatal(err)
		}
		ta, err := tx.New(reg, "alpha", &crosschain.Prepare{Tx: *sg, Leg: 0}, tx.Signer{Key: s.Public(), Nonce: n})
		if err == nil {
			err = ta.Sign(s)
		}
		tb, err2 := tx.New(reg, "beta", &crosschain.Prepare{Tx: *sg, Leg: 1}, tx.Signer{Key: bu.Public(), Nonce: n})
		if err == nil && err2 == nil {
			err = tb.Sign(bu)
		}
		if err != nil || err2 != nil {
			b.Fatal(err, err2)
		}
		txs[i], ids[i] = pair{ta, tb}, x.ID()
	}

	cfg := &relay.Config{Name: "bench", DB: filepath.Join(b.TempDir(), "relay.db"), Signer: relayer,
		PollInterval: relay.Duration{Duration: 100 * time.Millisecond}, BatchSteps: *dvpBatch,
		Chains: []relay.ChainConfig{{ID: "alpha", Endpoints: alpha.urls}, {ID: "beta", Endpoints: beta.urls}}}
	startRelay := func() {
		rctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- relay.Run(rctx, cfg) }()
		b.Cleanup(func() {
			cancel()
			if err := <-errc; err != nil {
				b.Error(err)
			}
		})
	}
	if !backlog {
		startRelay()
	}
	mu.Lock()
	alpha.committed, beta.committed = 0, 0
	clear(alpha.byType)
	clear(beta.byType)
	mu.Unlock()

	b.ResetTimer()
	mu.Lock()
	start = time.Now()
	mu.Unlock()
	cpu0 := nodetest.CPUTime()
	submitted := make([]time.Time, trades)
	for i, p := range txs {
		if rate > 0 {
			if w := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); w > 0 {
				time.Sleep(w)
			}
		}
		submitted[i] = time.Now()
		if *dvpCoordPrepare {
			alpha.submit(b, i, p.a)
		}
		beta.submit(b, i, p.b)
	}
	b.Logf("%d trades submitted in %v", trades, time.Since(start))
	if backlog {
		// Wait until every leg is prepared, then time the relay alone.
		last := ids[len(ids)-1]
		waitFor(b, 5*time.Minute, "backlog prepared", func() bool {
			ra, _ := alpha.c.State(ctx, 0, crosschain.LegKey(last, 0), false)
			rb, _ := beta.c.State(ctx, 0, crosschain.LegKey(last, 1), false)
			return (!*dvpCoordPrepare || ra != nil && ra.Found) && rb != nil && rb.Found
		})
		st, _ := alpha.c.Status(ctx)
		b.Logf("%d trades prepared on both chains in %v (alpha at height %d)", trades, time.Since(start), st.Height)
		mu.Lock()
		start = time.Now()
		mu.Unlock()
		cpu0 = nodetest.CPUTime()
		for i := range submitted {
			submitted[i] = start
		}
		startRelay()
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		mu.Lock()
		n := len(final)
		mu.Unlock()
		b.Fatalf("only %d of %d trades final after 5 minutes", n, trades)
	}
	elapsed, used := time.Since(start), nodetest.CPUTime()-cpu0
	b.StopTimer()

	mu.Lock()
	lat := make([]float64, trades)
	for i, id := range ids {
		lat[i] = final[id].Sub(submitted[i]).Seconds() * 1000
	}
	chainTxs := alpha.committed + beta.committed
	b.Logf("transactions committed on alpha: %v; on beta: %v", alpha.byType, beta.byType)
	mu.Unlock()
	slices.Sort(lat)
	b.ReportMetric(float64(trades)/elapsed.Seconds(), "trades/s")
	b.ReportMetric(lat[len(lat)/2], "p50-ms")
	b.ReportMetric(lat[len(lat)*99/100], "p99-ms")
	b.ReportMetric(lat[len(lat)-1], "max-ms")
	b.ReportMetric(float64(chainTxs)/float64(trades), "chain-txs/trade")
	b.ReportMetric(float64(chainTxs)/elapsed.Seconds(), "chain-tx/s")
	b.ReportMetric(used.Seconds()/elapsed.Seconds()/float64(runtime.GOMAXPROCS(0)), "cpu-busy")
	b.ReportMetric(float64(used.Microseconds())/float64(trades), "cpu-us/trade")

	// Every trade committed (none aborted on the way).
	for i, id := range ids {
		a, _ := alpha.c.State(ctx, 0, crosschain.LegKey(id, 0), false)
		var rec crosschain.LegRecord
		if a == nil || a.Decode(&rec) != nil || rec.Status != crosschain.Committed {
			b.Fatalf("trade %d (%s): leg 0 is %+v", i, id.Short(), rec)
		}
	}
}
