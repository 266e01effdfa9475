package shard_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/keyring"
	"github.com/plugchain/plug/chain/node"
	"github.com/plugchain/plug/chain/node/nodetest"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/crosschain/shard"
	"github.com/plugchain/plug/relay"
)

var (
	benchTransfers = flag.Int("shards.transfers", 4000, "transfers per BenchmarkShards cell")
	benchAccounts  = flag.Int("shards.accounts", 2000, "accounts funded at genesis over the shards (BenchmarkShards)")
	benchShardsSet = flag.String("shards.shards", "1,2,4", "shard counts of the in-process BenchmarkShards cells")
	benchCrossSet  = flag.String("shards.cross", "0,10,50", "cross-shard percentages of the BenchmarkShards cells")
	benchNetwork   = flag.String("shards.network", "", "network file of a running sharded testnet (plug testnet up --shards N): BenchmarkShards drives it instead of in-process shards")
	benchKeyring   = flag.String("shards.keyring", "", "with -shards.network: the testnet keyring holding admin (default: keys/ beside the network file)")
	benchUse       = flag.Int("shards.use", 0, "with -shards.network: place the accounts on the first N shards only (0: all of them)")
	benchPIDs      = flag.String("shards.pids", "", "with -shards.network: comma-separated PIDs of the node processes whose CPU time is measured")
)

// benchFunds is each account's USD at the start of a cell.
const benchFunds = 1_000_000

// BenchmarkShards runs the same transfer load on 1, 2 and 4 shards with 0, 10 and
// 50 % of the transfers crossing shards. Each shard is a chain of four validators
// in this process (libp2p on 127.0.0.1, bbolt files, HTTP gateways), and one relay
// (relay.Run, in process) connects every shard when there are two or more. The
// accounts are funded at genesis on their home shard as the network's hash
// placement puts them. The load is -shards.transfers transfers of 1 USD, each from
// the next account in turn, pre-signed and submitted in batches (POST /v1/txs) as
// fast as the chains admit them: an intra-shard transfer is one asset/transfer on
// the payer's shard; a cross-shard one is the two xchain/prepare transactions
// (the Out leg on the payer's shard, which coordinates, and the In leg on the
// payee's), both signed by the payer as shard.Client.Transfer signs them; the
// relay does the rest (decide, both finishes).
//
// A transfer is final when its asset/transfer committed or, across shards, when
// both finishes committed, as the commit hooks of each shard's first node see it.
// Each cell reports finalized tx/s, p50/p99 latency from a transfer's first
// submission to final, the blocks committed on all shards, the chain transactions
// per transfer, and the process CPU time per transfer and per validator (the
// figure that predicts throughput with one machine per validator; see
// docs/benchmarks.md). At the end every account's balance must be what the
// transfers make it and the USD supply summed over the shards unchanged.
//
// With -shards.network it drives a running testnet's shards over HTTP instead (see
// benchExternal).
func BenchmarkShards(b *testing.B) {
	if *benchNetwork != "" {
		benchExternal(b)
		return
	}
	for _, s := range intList(b, *benchShardsSet) {
		for _, pct := range intList(b, *benchCrossSet) {
			if s == 1 && pct > 0 {
				continue // nothing to cross to
			}
			b.Run(fmt.Sprintf("shards=%d/cross=%d%%", s, pct), func(b *testing.B) { benchInProcess(b, s, pct) })
		}
	}
}

func intList(b *testing.B, s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			b.Fatalf("bad list %q: %v", s, err)
		}
		out = append(out, n)
	}
	return out
}

// seededKey derives an ed25519 key from a number.
func seededKey(i uint64) crypto.PrivateKey {
	var seed [32]byte
	copy(seed[:], "shard-bench")
	binary.BigEndian.PutUint64(seed[24:], i)
	k, err := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(seed[:]))
	if err != nil {
		panic(err)
	}
	return k
}

// benchShard is one shard as the load sees it.
type benchShard struct {
	id string
	// nodes are clients of each node's gateway alone: batches go round-robin.
	nodes []*client.Client
	// height returns the shard's committed height (as its first node sees it).
	height func() uint64
	// committed counts the transactions committed on the shard, byType them by
	// type and outcome.
	committed int
	byType    map[string]int
	// seen holds the IDs committed so far, to tell a transaction committed a
	// second time (and failing on its nonce or its record) from a new one.
	seen map[hash.Hash]bool
}

// benchPlan is a cell's load: the transfers, pre-signed, and what they must do.
type benchPlan struct {
	net      *shard.Network
	accounts []crypto.PrivateKey
	home     []string // home[i] is accounts[i]'s shard
	// queue[shard] holds the transactions to submit there, in order, with the
	// transfer each belongs to.
	queue map[string][]queued
	// intra maps an asset/transfer's ID and cross an XTx's ID to its transfer.
	intra, cross map[hash.Hash]int
	n, nCross    int
	// want is every account's USD once every transfer is final.
	want map[crypto.Address]uint64
}

type queued struct {
	t        *tx.Tx
	transfer int
}

// newPlan builds transfers transfers over the accounts, pct % of them across
// shards. Transfer i is paid by account i mod len(accounts) to an account of
// the same shard or, for every transfer whose i mod 100 < pct, of the next shard.
// start is each account's balance before the load.
func newPlan(b *testing.B, net *shard.Network, accounts []crypto.PrivateKey, transfers, pct int, start uint64) *benchPlan {
	b.Helper()
	reg := app.Registry()
	p := &benchPlan{net: net, accounts: accounts, queue: map[string][]queued{},
		intra: map[hash.Hash]int{}, cross: map[hash.Hash]int{}, n: transfers, want: map[crypto.Address]uint64{}}
	byShard := map[string][]int{}
	for i, k := range accounts {
		h := net.HashShard(k.Public().Address(), 0)
		p.home = append(p.home, h)
		byShard[h] = append(byShard[h], i)
		p.want[k.Public().Address()] = start
	}
	ids := net.ChainIDs()
	var used []string
	for _, id := range ids {
		if len(byShard[id]) > 1 {
			used = append(used, id)
		}
	}
	// pos[i] is account i's position among its shard's accounts.
	pos := make([]int, len(accounts))
	for _, list := range byShard {
		for j, i := range list {
			pos[i] = j
		}
	}
	type nk struct {
		chain string
		addr  crypto.Address
	}
	nonces := map[nk]uint64{}
	next := func(chain string, a crypto.Address) uint64 {
		n := nonces[nk{chain, a}]
		nonces[nk{chain, a}] = n + 1
		return n
	}
	deadline := time.Now().Add(10 * time.Minute).UnixMilli()
	for i := 0; i < transfers; i++ {
		payer := i % len(accounts)
		src := p.home[payer]
		if len(byShard[src]) < 2 {
			b.Fatalf("shard %s holds %d accounts: use more accounts", src, len(byShard[src]))
		}
		dst := src
		if i%100 < pct && len(used) > 1 {
			dst = used[(slices.Index(used, src)+1)%len(used)]
		}
		list := byShard[dst]
		payee := list[(pos[payer]+1+i/len(accounts))%len(list)]
		if payee == payer {
			payee = list[(pos[payer]+2)%len(list)]
		}
		key, to := accounts[payer], accounts[payee].Public().Address()
		from := key.Public().Address()
		p.want[from]--
		p.want[to]++
		if src == dst {
			t, err := tx.New(reg, src, &asset.Transfer{Asset: "USD", From: from, To: to, Amount: 1}, tx.Signer{Key: key.Public(), Nonce: next(src, from)})
			if err == nil {
				err = t.Sign(key)
			}
			if err != nil {
				b.Fatalf("transfer %d: %v", i, err)
			}
			id, _ := t.ID()
			p.intra[id] = i
			p.queue[src] = append(p.queue[src], queued{t, i})
			continue
		}
		x := shard.CrossTransfer(src, dst, "USD", from, to, 1, deadline, uint64(i+1))
		s, err := crosschain.NewSigned(x, key)
		if err != nil {
			b.Fatalf("transfer %d: %v", i, err)
		}
		for leg, chain := range []string{src, dst} {
			t, err := tx.New(reg, chain, &crosschain.Prepare{Tx: *s, Leg: uint32(leg)}, tx.Signer{Key: key.Public(), Nonce: next(chain, from)})
			if err == nil {
				t.Body.Memo = x.Memo
				err = t.Sign(key)
			}
			if err != nil {
				b.Fatalf("transfer %d, leg %d: %v", i, leg, err)
			}
			p.queue[chain] = append(p.queue[chain], queued{t, i})
		}
		p.cross[x.ID()] = i
		p.nCross++
	}
	return p
}

// benchTracker records when each transfer becomes final.
type benchTracker struct {
	plan     *benchPlan
	mu       sync.Mutex
	final    []time.Time
	finished map[hash.Hash]int // finished legs of each XTx
	left     int
	done     chan struct{}
	failed   []string
}

func newTracker(p *benchPlan) *benchTracker {
	return &benchTracker{plan: p, final: make([]time.Time, p.n), finished: map[hash.Hash]int{}, left: p.n, done: make(chan struct{})}
}

// final1 records trade idx final at now, the first time.
func (tr *benchTracker) final1(idx int, now time.Time) {
	if tr.final[idx].IsZero() {
		tr.final[idx] = now
		if tr.left--; tr.left == 0 {
			close(tr.done)
		}
	}
}

// observe takes a committed block of shard sh with its receipts (nil when
// unknown: a follower over HTTP sees none, and the end-of-cell checks catch
// what failed; a batch's skipped steps then count as applied).
func (tr *benchTracker) observe(sh *benchShard, txs []*tx.Tx, ids []hash.Hash, rs []exec.Receipt) {
	now := time.Now()
	reg := app.Registry()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	sh.committed += len(txs)
	for i, t := range txs {
		ok := rs == nil || rs[i].Code == exec.OK
		var skipped []transform.Skip
		k := t.Body.Type
		if rs != nil {
			k += " " + rs[i].Code.String()
			skipped = rs[i].Skipped
		}
		if sh.seen[ids[i]] {
			k += " (again)"
		}
		sh.seen[ids[i]] = true
		if sh.byType[k]++; !ok && sh.byType[k] == 1 && len(tr.failed) < 10 {
			tr.failed = append(tr.failed, fmt.Sprintf("%s: first %s: %s", sh.id, k, rs[i].Error))
		}
		if !ok {
			continue
		}
		var idx int
		var found bool
		switch t.Body.Type {
		case asset.TypeTransfer:
			idx, found = tr.plan.intra[ids[i]]
		case crosschain.TypeFinish, crosschain.TypeDecide, crosschain.TypeBatch:
			f, err := reg.Decode(t.Body.Type, t.Body.Payload)
			if err != nil {
				continue
			}
			for _, fl := range crosschain.FinishedLegs(f, skipped) {
				if j, ok := tr.plan.cross[fl.ID]; ok && fl.Legs > 0 {
					if tr.finished[fl.ID] += fl.Legs; tr.finished[fl.ID] == 2 {
						tr.final1(j, now)
					}
				}
			}
		}
		if found {
			tr.final1(idx, now)
		}
	}
}

// benchInProcess runs one cell on shards in-process shards.
func benchInProcess(b *testing.B, shards, pct int) {
	net := &shard.Network{Name: "bench", Assets: []string{"USD"}}
	for i := 0; i < shards; i++ {
		net.Shards = append(net.Shards, shard.Shard{ChainID: fmt.Sprintf("shard-%d", i)})
	}
	if err := net.Check(); err != nil {
		b.Fatal(err)
	}
	accounts := make([]crypto.PrivateKey, *benchAccounts)
	for i := range accounts {
		accounts[i] = seededKey(uint64(i))
	}
	plan := newPlan(b, net, accounts, *benchTransfers, pct, benchFunds)
	tr := newTracker(plan)

	const validators = 4
	var chains []*benchShard
	readers := map[string]*client.Client{}
	var relayChains []relay.ChainConfig
	for si, id := range net.ChainIDs() {
		sh := &benchShard{id: id, byType: map[string]int{}, seen: map[hash.Hash]bool{}}
		var vals []crypto.PrivateKey
		var pubs []crypto.PublicKey
		for v := 0; v < validators; v++ {
			k := seededKey(uint64(1_000_000 + 100*si + v))
			vals, pubs = append(vals, k), append(pubs, k.Public())
		}
		gen := genesis.Default(id, pubs, admin.Public().Address())
		for i := range gen.Roles {
			if gen.Roles[i].Name == app.RelayerRole {
				gen.Roles[i].Members = append(gen.Roles[i].Members, relayer.Public().Address().String())
			}
		}
		bal := map[string]uint64{}
		for i, k := range accounts {
			if plan.home[i] == id {
				bal[k.Public().Address().String()] = benchFunds
			}
		}
		gen.Assets = append(gen.Assets, genesis.Asset{Name: "USD", Issuer: "admin", Balances: bal})
		var peers, urls []string
		var first *node.Node
		for v, k := range vals {
			cfg := node.Config{Name: fmt.Sprintf("%s-val-%d", id, v+1), Genesis: gen, Key: k, Validator: true, Peers: slices.Clone(peers),
				Registry: app.Registry(), Models: app.Models()}
			if v == 0 {
				cfg.OnCommit = func(blk *block.Block, rs []exec.Receipt) {
					ids := make([]hash.Hash, len(rs))
					for i, r := range rs {
						ids[i] = r.TxID
					}
					tr.observe(sh, blk.Txs, ids, rs)
				}
			}
			n, url := nodetest.Start(b, cfg)
			if v == 0 {
				first = n
			}
			c, err := client.New([]string{url}, client.WithChainID(id))
			if err != nil {
				b.Fatal(err)
			}
			sh.nodes = append(sh.nodes, c)
			urls = append(urls, url)
			peers = append(peers, n.Addrs()[0])
		}
		sh.height = func() uint64 { return first.Status().Height }
		net.Shards[si].Endpoints = urls
		readers[id] = sh.nodes[0]
		relayChains = append(relayChains, relay.ChainConfig{ID: id, Endpoints: urls})
		chains = append(chains, sh)
	}
	for _, sh := range chains {
		waitHeight(b, sh, 2)
	}
	ctx := context.Background()
	if shards > 1 {
		for _, dst := range chains {
			for _, src := range chains {
				if src != dst {
					if _, err := relay.CreateClient(ctx, readers[src.id], readers[dst.id], src.id, dst.id, admin, 1); err != nil {
						b.Fatalf("light client of %s on %s: %v", src.id, dst.id, err)
					}
				}
			}
		}
		cfg := &relay.Config{Name: "bench", DB: filepath.Join(b.TempDir(), "relay.db"), Signer: relayer,
			PollInterval: relay.Duration{Duration: 100 * time.Millisecond}, Chains: relayChains}
		rctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- relay.Run(rctx, cfg) }()
		b.Cleanup(func() {
			cancel()
			if err := <-errc; err != nil {
				b.Errorf("relay: %v", err)
			}
		})
	}
	supply := supplyOf(b, chains)
	if want := uint64(len(accounts)) * benchFunds; supply != want {
		b.Fatalf("USD supply at genesis %d, want %d", supply, want)
	}
	runCell(b, plan, tr, chains, shards*validators, nodetest.CPUTime)
	checkCell(b, plan, chains, supply)
}

// waitHeight waits until sh has committed height h.
func waitHeight(b *testing.B, sh *benchShard, h uint64) {
	b.Helper()
	for deadline := time.Now().Add(60 * time.Second); sh.height() < h; {
		if time.Now().After(deadline) {
			b.Fatalf("%s: no block %d after 60 s", sh.id, h)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runCell submits plan's transactions, every shard's queue in its own goroutine,
// in batches round-robin over the shard's nodes, waits until every transfer is
// final and reports the cell's figures. cpu reads the CPU time of what runs
// the validators; validators is how many there are.
func runCell(b *testing.B, plan *benchPlan, tr *benchTracker, chains []*benchShard, validators int, cpu func() time.Duration) {
	const batch = 500
	submitted := make([]time.Time, plan.n)
	var smu sync.Mutex
	h0 := make([]uint64, len(chains))
	// Heights are read outside tr.mu: a node's commit hook takes it.
	for i, sh := range chains {
		h0[i] = sh.height()
	}
	tr.mu.Lock()
	for _, sh := range chains {
		sh.committed = 0
		clear(sh.byType)
		sh.seen = map[hash.Hash]bool{}
	}
	tr.mu.Unlock()
	ctx := context.Background()

	b.ResetTimer()
	cpu0, start := cpu(), time.Now()
	errc := make(chan error, len(chains))
	for _, sh := range chains {
		q := plan.queue[sh.id]
		go func() {
			for k := 0; len(q) > 0; k++ {
				chunk := q[:min(batch, len(q))]
				q = q[len(chunk):]
				now := time.Now()
				smu.Lock()
				for _, it := range chunk {
					if submitted[it.transfer].IsZero() {
						submitted[it.transfer] = now
					}
				}
				smu.Unlock()
				if err := submitChunk(ctx, sh.nodes[k%len(sh.nodes)], chunk); err != nil {
					errc <- fmt.Errorf("shard %s: %w", sh.id, err)
					return
				}
			}
			errc <- nil
		}()
	}
	for range chains {
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d transfers (%d cross-shard) submitted in %v", plan.n, plan.nCross, time.Since(start).Round(time.Millisecond))
	select {
	case <-tr.done:
	case <-time.After(3 * time.Minute):
		for _, sh := range chains {
			h := sh.height()
			tr.mu.Lock()
			b.Logf("%s: height %d, committed %v", sh.id, h, sh.byType)
			tr.mu.Unlock()
		}
		tr.mu.Lock()
		left := tr.left
		tr.mu.Unlock()
		b.Fatalf("%d of %d transfers not final after 3 minutes", left, plan.n)
	}
	elapsed, used := time.Since(start), cpu()-cpu0
	b.StopTimer()
	h1 := make([]uint64, len(chains))
	for i, sh := range chains {
		h1[i] = sh.height()
	}

	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, f := range tr.failed {
		b.Log(f)
	}
	lat := make([]float64, plan.n)
	for i := range lat {
		lat[i] = tr.final[i].Sub(submitted[i]).Seconds() * 1000
	}
	slices.Sort(lat)
	blocks, chainTxs := 0, 0
	for i, sh := range chains {
		blocks += int(h1[i] - h0[i])
		chainTxs += sh.committed
		b.Logf("%s: %d blocks, committed %v", sh.id, h1[i]-h0[i], sh.byType)
	}
	b.ReportMetric(float64(plan.n)/elapsed.Seconds(), "tx/s")
	b.ReportMetric(lat[len(lat)/2], "p50-ms")
	b.ReportMetric(lat[len(lat)*99/100], "p99-ms")
	b.ReportMetric(float64(blocks), "blocks")
	b.ReportMetric(float64(chainTxs)/float64(plan.n), "chain-txs/transfer")
	if used > 0 {
		b.ReportMetric(float64(used.Microseconds())/float64(plan.n), "cpu-us/transfer")
		b.ReportMetric(float64(used.Microseconds())/float64(plan.n)/float64(validators), "cpu-us/transfer/validator")
		b.ReportMetric(used.Seconds()/elapsed.Seconds()/float64(runtime.GOMAXPROCS(0)), "cpu-busy")
	}
}

// submitChunk submits txs to c in one batch, resubmitting those the node turns
// away as busy (in order, after a pause) until all are admitted.
func submitChunk(ctx context.Context, c *client.Client, txs []queued) error {
	for pause := 10 * time.Millisecond; len(txs) > 0; pause = min(2*pause, 500*time.Millisecond) {
		batch := make([]*tx.Tx, len(txs))
		for i, it := range txs {
			batch[i] = it.t
		}
		errs, err := c.SubmitBatch(ctx, batch)
		if err != nil {
			if errors.Is(err, client.ErrBusy) {
				time.Sleep(pause)
				continue
			}
			return fmt.Errorf("submit batch of %d: %w", len(batch), err)
		}
		var again []queued
		for i, e := range errs {
			switch {
			case e == nil:
			case errors.Is(e, client.ErrBusy):
				again = append(again, txs[i])
			default:
				return fmt.Errorf("transfer %d refused: %w", txs[i].transfer, e)
			}
		}
		txs = again
		if len(txs) > 0 {
			time.Sleep(pause)
		}
	}
	return nil
}

// supplyOf sums the USD supply over the shards (read from each shard's first node).
func supplyOf(b *testing.B, chains []*benchShard) uint64 {
	b.Helper()
	var total uint64
	for _, sh := range chains {
		res, err := sh.nodes[0].State(context.Background(), 0, asset.SupplyKey("USD"), false)
		if err != nil {
			b.Fatalf("%s: supply: %v", sh.id, err)
		}
		var n uint64
		if err := res.Decode(&n); err != nil {
			b.Fatalf("%s: supply: %v", sh.id, err)
		}
		total += n
	}
	return total
}

// checkCell checks that the cell moved what it should: every account holds what
// the plan says on its home shard, no shard still reserves an In leg's mint, and
// the USD supply summed over the shards is what it was.
func checkCell(b *testing.B, plan *benchPlan, chains []*benchShard, supply uint64) {
	b.Helper()
	ctx := context.Background()
	byID := map[string]*benchShard{}
	for _, sh := range chains {
		byID[sh.id] = sh
	}
	var mu sync.Mutex
	var bad []string
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for i := w; i < len(plan.accounts); i += 8 {
				a := plan.accounts[i].Public().Address()
				c := byID[plan.home[i]].nodes[0]
				var got uint64
				var err error
				// The reading node may be a block behind the hook that saw the end.
				for try := 0; try < 50; try++ {
					if got, err = c.Balance(ctx, "USD", a); err == nil && got == plan.want[a] {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				if err != nil || got != plan.want[a] {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%s on %s: %d USD (%v), want %d", a, plan.home[i], got, err, plan.want[a]))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(bad) > 0 {
		b.Fatalf("%d accounts wrong after the load, e.g. %s", len(bad), bad[0])
	}
	for _, sh := range chains {
		res, err := sh.nodes[0].State(ctx, 0, crosschain.MintingKey("USD"), false)
		var n uint64
		if err == nil {
			err = res.Decode(&n)
		}
		if err != nil || n != 0 {
			b.Fatalf("%s: %d USD still reserved for In legs (%v)", sh.id, n, err)
		}
	}
	if got := supplyOf(b, chains); got != supply {
		b.Fatalf("USD supply over the shards %d after the load, %d before", got, supply)
	}
}

// benchExternal runs the cells of -shards.cross against the running sharded
// testnet of -shards.network: the pinning check of docs/benchmarks.md. Fresh
// accounts (seeded by the clock) are funded on their home shards by the testnet's
// admin (asset/issue, before timing), then the load runs as in process; a
// follower per shard polls its first node's blocks to time finality. CPU time
// is that of the processes of -shards.pids.
func benchExternal(b *testing.B) {
	net, err := shard.Load(*benchNetwork)
	if err != nil {
		b.Fatal(err)
	}
	krDir := *benchKeyring
	if krDir == "" {
		krDir = filepath.Join(filepath.Dir(*benchNetwork), "keys")
	}
	kr, err := keyring.Open(krDir, keyring.Test, nil)
	if err != nil {
		b.Fatalf("keyring %s: %v", krDir, err)
	}
	adm, err := kr.Get("admin")
	if err != nil {
		b.Fatalf("keyring %s: %v", krDir, err)
	}
	use := net
	if *benchUse > 0 && *benchUse < len(net.Shards) {
		// Place over the first shards only: a network of those (same hash rule).
		use = &shard.Network{Name: net.Name, Assets: net.Assets, Shards: net.Shards[:*benchUse]}
	}
	var pids []int
	if *benchPIDs != "" {
		pids = intList(b, *benchPIDs)
	}
	validators := 0
	for _, s := range use.Shards {
		validators += len(s.Endpoints)
	}
	for _, pct := range intList(b, *benchCrossSet) {
		if len(use.Shards) == 1 && pct > 0 {
			continue
		}
		b.Run(fmt.Sprintf("external/shards=%d/cross=%d%%", len(use.Shards), pct), func(b *testing.B) {
			seed := uint64(time.Now().UnixNano())
			accounts := make([]crypto.PrivateKey, *benchAccounts)
			for i := range accounts {
				accounts[i] = seededKey(seed + uint64(i))
			}
			plan := newPlan(b, use, accounts, *benchTransfers, pct, benchFunds)
			tr := newTracker(plan)
			var chains []*benchShard
			for _, s := range use.Shards {
				sh := &benchShard{id: s.ChainID, byType: map[string]int{}, seen: map[hash.Hash]bool{}}
				for _, u := range s.Endpoints {
					c, err := client.New([]string{u}, client.WithChainID(s.ChainID))
					if err != nil {
						b.Fatal(err)
					}
					sh.nodes = append(sh.nodes, c)
				}
				chains = append(chains, sh)
			}
			fund(b, adm, plan, chains)
			supply := supplyOf(b, chains)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for _, sh := range chains {
				h := follow(ctx, &wg, sh, tr)
				sh.height = h
			}
			defer func() { cancel(); wg.Wait() }()
			for _, sh := range chains {
				waitHeight(b, sh, 1)
			}
			self := nodetest.CPUTime()
			runCell(b, plan, tr, chains, validators, func() time.Duration { return procCPU(pids) })
			b.ReportMetric(float64((nodetest.CPUTime()-self).Microseconds())/float64(plan.n), "driver-cpu-us/transfer")
			checkCell(b, plan, chains, supply)
		})
	}
}

// fund issues benchFunds USD to every account of plan on its home shard, signed
// by the testnet's admin, and waits until each shard committed them (the admin's
// nonces order them).
func fund(b *testing.B, adm crypto.PrivateKey, plan *benchPlan, chains []*benchShard) {
	b.Helper()
	ctx := context.Background()
	reg := app.Registry()
	for _, sh := range chains {
		n, err := sh.nodes[0].Nonce(ctx, adm.Public().Address())
		if err != nil {
			b.Fatalf("%s: admin nonce: %v", sh.id, err)
		}
		var q []queued
		for i, k := range plan.accounts {
			if plan.home[i] != sh.id {
				continue
			}
			t, err := tx.New(reg, sh.id, &asset.Issue{Asset: "USD", To: k.Public().Address(), Amount: benchFunds}, tx.Signer{Key: adm.Public(), Nonce: n})
			if err == nil {
				err = t.Sign(adm)
			}
			if err != nil {
				b.Fatalf("%s: issue: %v", sh.id, err)
			}
			n++
			q = append(q, queued{t, i})
		}
		// One chunk at a time: a signer's nonces may run at most a window
		// (1,000) ahead of its committed one.
		for len(q) > 0 {
			chunk := q[:min(500, len(q))]
			q = q[len(chunk):]
			if err := submitChunk(ctx, sh.nodes[0], chunk); err != nil {
				b.Fatalf("%s: funding: %v", sh.id, err)
			}
			last, _ := chunk[len(chunk)-1].t.ID()
			r, err := sh.nodes[0].WaitTx(ctx, last, 2*time.Minute)
			if err != nil || r.Code != exec.OK {
				b.Fatalf("%s: funding: issue %+v: %v", sh.id, r, err)
			}
		}
	}
}

// follow polls sh's first node for new blocks until ctx ends, handing each to
// tr (without receipts: the gateway's block carries none). It returns the
// height the follower has seen.
func follow(ctx context.Context, wg *sync.WaitGroup, sh *benchShard, tr *benchTracker) func() uint64 {
	var mu sync.Mutex
	var seen uint64
	c := sh.nodes[0]
	if st, err := c.Status(ctx); err == nil {
		seen = st.Height
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			st, err := c.Status(ctx)
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			mu.Lock()
			h := seen
			mu.Unlock()
			for h < st.Height && ctx.Err() == nil {
				br, err := c.Block(ctx, h+1)
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				tr.observe(sh, br.Block.Txs, br.TxIDs, nil)
				h++
				mu.Lock()
				seen = h
				mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	return func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

// procCPU sums the user + system CPU time of pids (from /proc/PID/stat; a
// process that is gone counts 0).
func procCPU(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: state is field 3, utime 14, stime 15.
		s := string(raw)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseUint(f[11], 10, 64)
		st, _ := strconv.ParseUint(f[12], 10, 64)
		total += time.Duration(u+st) * time.Second / 100 // USER_HZ
	}
	return total
}
