package relay_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/node"
	"github.com/plugchain/plug/chain/node/nodetest"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/chain/validator"
	"github.com/plugchain/plug/chain/valset"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/relay"
)

func key(name string) crypto.PrivateKey {
	seed := sha256.Sum256([]byte("relay-test/" + name))
	k, err := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(seed[:]))
	if err != nil {
		panic(err)
	}
	return k
}

var (
	admin   = key("admin")
	relayer = key("relayer")
	alice   = key("alice") // holds SEC on alpha
	bob     = key("bob")   // holds USD on beta
)

func addr(k crypto.PrivateKey) crypto.Address { return k.Public().Address() }

const funds = 1_000_000

// testChain is a one-validator chain in process with its gateway.
type testChain struct {
	id     string
	url    string
	c      *client.Client
	nonces map[crypto.Address]uint64
}

func registry() (*transform.Registry, *transform.Models) {
	return app.Registry(), app.Models()
}

// startChain starts a chain whose genesis edit may change (before the holder's
// funds are added).
func startChain(t *testing.T, id, assetName string, holder crypto.PrivateKey, edit ...func(*genesis.Doc)) *testChain {
	t.Helper()
	val := key(id + "/val")
	reg, ms := registry()
	gen := genesis.Default(id, []crypto.PublicKey{val.Public()}, addr(admin))
	for i := range gen.Roles {
		if gen.Roles[i].Name == app.RelayerRole {
			gen.Roles[i].Members = append(gen.Roles[i].Members, addr(relayer).String())
		}
	}
	for _, e := range edit {
		e(gen)
	}
	gen.Assets = append(gen.Assets, genesis.Asset{Name: assetName, Issuer: "admin", Balances: map[string]uint64{addr(holder).String(): funds}})
	to := consensus.DefaultTimeouts()
	to.NewHeight, to.Heartbeat = 20, 500
	n, url := nodetest.Start(t, node.Config{Name: id, Genesis: gen, Key: val, Validator: true,
		Registry: reg, Models: ms, Timeouts: to})
	tc := &testChain{id: id, url: url, nonces: map[crypto.Address]uint64{}}
	var err error
	if tc.c, err = client.New([]string{tc.url}); err != nil {
		t.Fatal(err)
	}
	nodetest.WaitHeight(t, n, 1)
	return tc
}

func waitFor(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// send signs tr by k with k's next local nonce and submits it without waiting.
func (c *testChain) send(t *testing.T, tr transform.Transform, k crypto.PrivateKey) hash.Hash {
	t.Helper()
	reg, _ := registry()
	a := addr(k)
	n, ok := c.nonces[a]
	if !ok {
		var err error
		if n, err = c.c.Nonce(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	x, err := tx.New(reg, c.id, tr, tx.Signer{Key: k.Public(), Nonce: n})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Sign(k); err != nil {
		t.Fatal(err)
	}
	res, err := c.c.Submit(context.Background(), x, false, 0)
	if err != nil {
		t.Fatalf("%s: submit: %v", c.id, err)
	}
	c.nonces[a] = n + 1
	return res.ID
}

func (c *testChain) get(t *testing.T, k string, dst any) bool {
	t.Helper()
	res, err := c.c.State(context.Background(), 0, k, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Decode(dst); err != nil {
		t.Fatal(err)
	}
	return res.Found
}

func (c *testChain) balance(t *testing.T, a string, k crypto.PrivateKey) uint64 {
	var n uint64
	c.get(t, asset.BalanceKey(a, addr(k)), &n)
	return n
}

func (c *testChain) leg(t *testing.T, id hash.Hash, i int) crosschain.Status {
	var r crosschain.LegRecord
	c.get(t, crosschain.LegKey(id, i), &r)
	return r.Status
}

// createClient makes dst trust src's block 1 (lc/create by the admin).
func createClient(t *testing.T, dst, src *testChain) {
	t.Helper()
	ctx := context.Background()
	hr, err := src.c.Header(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := src.c.State(ctx, 1, validator.SetKey, false)
	if err != nil {
		t.Fatal(err)
	}
	var set valset.Set
	if err := vs.Decode(&set); err != nil {
		t.Fatal(err)
	}
	id := dst.send(t, &crosschain.LCCreate{ChainID: src.id, Header: *hr.Header, NextSet: set}, admin)
	r, err := dst.c.WaitTx(ctx, id, 20*time.Second)
	if err != nil || r.Code != 0 {
		t.Fatalf("lc/create of %s on %s: %v %+v", src.id, dst.id, err, r)
	}
}

type world struct {
	alpha, beta *testChain
	cfg         *relay.Config
	nonce       uint64
}

func newWorld(t *testing.T, edit ...func(*genesis.Doc)) *world {
	w := &world{alpha: startChain(t, "alpha", "SEC", alice, edit...), beta: startChain(t, "beta", "USD", bob, edit...)}
	createClient(t, w.alpha, w.beta)
	createClient(t, w.beta, w.alpha)
	w.cfg = &relay.Config{Name: "test", DB: filepath.Join(t.TempDir(), "relay.db"), Signer: relayer,
		PollInterval: relay.Duration{Duration: 50 * time.Millisecond}, RetryAfter: relay.Duration{Duration: 2 * time.Second},
		Chains: []relay.ChainConfig{{ID: "alpha", Endpoints: []string{w.alpha.url}}, {ID: "beta", Endpoints: []string{w.beta.url}}}}
	return w
}

// startRelay runs the daemon until the returned stop is called.
func (w *world) startRelay(t *testing.T) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := *w.cfg
	go func() { done <- relay.Run(ctx, &cfg) }()
	var once bool
	stop = func() {
		if once {
			return
		}
		once = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// dvp submits a DvP: sec SEC alice->bob on alpha against usd USD bob->alice on
// beta, coordinated by alpha; each party submits its own prepare.
func (w *world) dvp(t *testing.T, sec, usd uint64) hash.Hash {
	return w.trade(t, sec, usd, true)
}

// trade is dvp where, without coordPrepare, only bob prepares (on beta) and
// the relay's decide prepares alice's leg on alpha.
func (w *world) trade(t *testing.T, sec, usd uint64, coordPrepare bool) hash.Hash {
	w.nonce++
	x := crosschain.XTx{
		Legs: []crosschain.Leg{
			{Chain: "alpha", Asset: "SEC", From: addr(alice), To: addr(bob), Amount: sec},
			{Chain: "beta", Asset: "USD", From: addr(bob), To: addr(alice), Amount: usd},
		},
		Coordinator: "alpha", Deadline: time.Now().Add(5 * time.Minute).UnixMilli(), Nonce: w.nonce,
	}
	s, err := crosschain.NewSigned(x, alice, bob)
	if err != nil {
		t.Fatal(err)
	}
	if coordPrepare {
		w.alpha.send(t, &crosschain.Prepare{Tx: *s, Leg: 0}, alice)
	}
	w.beta.send(t, &crosschain.Prepare{Tx: *s, Leg: 1}, bob)
	return x.ID()
}

// TestRelayPreparesCoordinatorLeg: only the buyer prepares; the relay learns
// the trade from beta and its decide on alpha, carrying the parties'
// signatures, prepares and commits alice's leg. A seller who cannot deliver
// gets an abort with the reason, and bob's escrow on beta is refunded.
func TestRelayPreparesCoordinatorLeg(t *testing.T) {
	w := newWorld(t)
	// The relay's fallback, a prepare of its own for a leg still missing after
	// RetryAfter, must not be what settles these trades.
	w.cfg.RetryAfter.Duration = 10 * time.Minute
	w.startRelay(t)
	id := w.trade(t, 10, 500, false)
	a, b := w.waitFinal(t, id, 30*time.Second)
	if a != crosschain.Committed || b != crosschain.Committed {
		t.Fatalf("legs %s / %s, want committed", a, b)
	}
	if got := w.alpha.balance(t, "SEC", bob); got != 10 {
		t.Fatalf("bob holds %d SEC, want 10", got)
	}
	if got := w.beta.balance(t, "USD", alice); got != 500 {
		t.Fatalf("alice holds %d USD, want 500", got)
	}

	id = w.trade(t, 2*funds, 7, false)
	a, b = w.waitFinal(t, id, 30*time.Second)
	if a != crosschain.Aborted || b != crosschain.Aborted {
		t.Fatalf("undeliverable trade: legs %s / %s, want aborted", a, b)
	}
	var d crosschain.Decision
	if !w.alpha.get(t, crosschain.DecisionKey(id), &d) || d.Commit || !strings.Contains(d.Reason, "insufficient funds") {
		t.Fatalf("decision %+v, want an abort for alice's funds", d)
	}
	if got := w.beta.balance(t, "USD", bob); got != funds-500 {
		t.Fatalf("bob holds %d USD after the refund, want %d", got, funds-500)
	}
}

func (w *world) final(t *testing.T, id hash.Hash) (a, b crosschain.Status) {
	return w.alpha.leg(t, id, 0), w.beta.leg(t, id, 1)
}

func (w *world) waitFinal(t *testing.T, id hash.Hash, d time.Duration) (a, b crosschain.Status) {
	t.Helper()
	waitFor(t, d, "xtx "+id.Short()+" final", func() bool {
		a, b = w.final(t, id)
		return (a == crosschain.Committed || a == crosschain.Aborted) && (b == crosschain.Committed || b == crosschain.Aborted)
	})
	return a, b
}

func TestRelayDvP(t *testing.T) {
	w := newWorld(t)
	stop := w.startRelay(t)

	// A DvP that commits.
	id := w.dvp(t, 10, 500)
	a, b := w.waitFinal(t, id, 30*time.Second)
	if a != crosschain.Committed || b != crosschain.Committed {
		t.Fatalf("dvp: legs %s / %s, want committed", a, b)
	}
	if got := w.alpha.balance(t, "SEC", bob); got != 10 {
		t.Fatalf("bob holds %d SEC, want 10", got)
	}
	if got := w.beta.balance(t, "USD", alice); got != 500 {
		t.Fatalf("alice holds %d USD, want 500", got)
	}

	// A DvP bob cannot pay: the USD leg is refused, the SEC leg refunded.
	id = w.dvp(t, 20, 2*funds)
	a, b = w.waitFinal(t, id, 30*time.Second)
	if a != crosschain.Aborted || b != crosschain.Aborted {
		t.Fatalf("unfunded dvp: legs %s / %s, want aborted", a, b)
	}
	if got := w.alpha.balance(t, "SEC", alice); got != funds-10 {
		t.Fatalf("alice holds %d SEC after the refund, want %d", got, funds-10)
	}
	var d crosschain.Decision
	if !w.alpha.get(t, crosschain.DecisionKey(id), &d) || d.Commit || d.Reason == "" {
		t.Fatalf("decision %+v, want an abort with a reason", d)
	}
	t.Logf("abort reason: %s", d.Reason)

	// Restart: stop the relay, submit a trade while it is down, start it again
	// with the same db: it resumes from its scanned heights.
	stop()
	id = w.dvp(t, 1, 1)
	waitFor(t, 20*time.Second, "legs prepared", func() bool {
		a, b := w.final(t, id)
		return a == crosschain.Prepared && b == crosschain.Prepared
	})
	w.startRelay(t)
	a, b = w.waitFinal(t, id, 30*time.Second)
	if a != crosschain.Committed || b != crosschain.Committed {
		t.Fatalf("after restart: legs %s / %s, want committed", a, b)
	}

	rep, err := relay.Status(context.Background(), w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Paths {
		if !p.Exists || p.Error != "" {
			t.Fatalf("status path %+v", p)
		}
	}
	t.Logf("status: %+v", rep.Paths)
}

// TestRelayBacklog measures how long a backlog of trades prepared while the relay
// was down takes to settle once it starts.
func TestRelayBacklog(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	const n = 50
	w := newWorld(t)
	ids := make([]hash.Hash, n)
	for i := range ids {
		ids[i] = w.dvp(t, 1, 1)
	}
	waitFor(t, 60*time.Second, "backlog prepared", func() bool {
		a, b := w.final(t, ids[n-1])
		return a == crosschain.Prepared && b == crosschain.Prepared
	})
	start := time.Now()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.cfg.MetricsListen = ln.Addr().String()
	ln.Close()
	stop := w.startRelay(t)
	for _, id := range ids {
		a, b := w.waitFinal(t, id, 120*time.Second)
		if a != crosschain.Committed || b != crosschain.Committed {
			t.Fatalf("%s: legs %s / %s", id.Short(), a, b)
		}
	}
	el := time.Since(start)
	if got := w.alpha.balance(t, "SEC", bob); got != n {
		t.Fatalf("bob holds %d SEC, want %d", got, n)
	}
	// The operator sees it: steps and batches on /metrics.
	resp, err := http.Get("http://" + w.cfg.MetricsListen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`plug_relay_batches_total{chain="alpha"}`, `plug_relay_batches_total{chain="beta"}`, `plug_relay_proofs_relayed_total{kind="decide"}`, `plug_relay_proofs_relayed_total{kind="finish"}`} {
		if !bytes.Contains(body, []byte(m+" ")) {
			t.Fatalf("/metrics lacks %s", m)
		}
	}
	// The backlog's decides and finishes went out in batches, not one
	// transaction each.
	for _, c := range []*testChain{w.alpha, w.beta} {
		types := c.txTypes(t)
		single := types[crosschain.TypeDecide] + types[crosschain.TypeFinish]
		if types[crosschain.TypeBatch] == 0 || single >= n {
			t.Fatalf("%s committed %v: want the steps in xchain/batch transactions", c.id, types)
		}
	}
	t.Logf("backlog of %d DvPs cleared in %s (%.1f trades/s)", n, el.Round(time.Millisecond), float64(n)/el.Seconds())

	// Finished trades are forgotten: the relay's db keeps none of them.
	waitFor(t, 10*time.Second, "the relay to drop finished trades", func() bool {
		rep, err := relay.Status(context.Background(), w.cfg)
		return err == nil && rep.Pending == 0
	})
	stop()
	bdb, err := bolt.Open(w.cfg.DB, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	var kept int
	if err := bdb.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("xtx")); b != nil {
			kept = b.Stats().KeyN
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if kept != 0 {
		t.Fatalf("the relay's db still holds %d XTx records after every trade finished", kept)
	}
}

// TestRelayFollowsBlocks: with a poll interval far beyond the test's wait, a
// DvP settles because the relay wakes at every committed block (the gateway's
// event stream), not at its next poll.
func TestRelayFollowsBlocks(t *testing.T) {
	w := newWorld(t)
	w.cfg.PollInterval = relay.Duration{Duration: time.Minute}
	w.startRelay(t)
	id := w.dvp(t, 3, 30)
	a, b := w.waitFinal(t, id, 20*time.Second)
	if a != crosschain.Committed || b != crosschain.Committed {
		t.Fatalf("dvp: legs %s / %s, want committed", a, b)
	}
}

// txTypes counts the transactions of each type the chain committed.
func (c *testChain) txTypes(t *testing.T) map[string]int {
	t.Helper()
	ctx := context.Background()
	st, err := c.c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]int{}
	for h := uint64(1); h <= st.Height; h++ {
		br, err := c.c.Block(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range br.Block.Txs {
			types[x.Body.Type]++
		}
	}
	return types
}

// TestRelayUnbatched: on chains where no role lists xchain/batch (a genesis
// older than it), the relay reads the chain's policy and settles with a
// transaction per step instead of batches that would all fail.
func TestRelayUnbatched(t *testing.T) {
	w := newWorld(t, func(g *genesis.Doc) {
		for i := range g.Roles {
			g.Roles[i].Transforms = slices.DeleteFunc(g.Roles[i].Transforms, func(s string) bool { return s == crosschain.TypeBatch })
		}
	})
	w.startRelay(t)
	ids := []hash.Hash{w.dvp(t, 1, 10), w.dvp(t, 2, 20), w.dvp(t, 3, 30)}
	for _, id := range ids {
		if a, b := w.waitFinal(t, id, 30*time.Second); a != crosschain.Committed || b != crosschain.Committed {
			t.Fatalf("%s: legs %s / %s, want committed", id.Short(), a, b)
		}
	}
	if types := w.alpha.txTypes(t); types[crosschain.TypeBatch] != 0 || types[crosschain.TypeDecide] != len(ids) {
		t.Fatalf("alpha committed %v: want %d decides and no batch", types, len(ids))
	}
}

// TestRelayIdleIsQuiet: with no trade in flight the relay refreshes the light
// clients only every client_refresh, so two idle chains do not drive each
// other's blocks (each block of one needs an update on the other, whose block
// needs one on the first, ...): they commit at their empty-block pace. A trade
// that arrives then still settles.
func TestRelayIdleIsQuiet(t *testing.T) {
	w := newWorld(t)
	w.startRelay(t)
	ctx := context.Background()
	height := func(c *testChain) uint64 {
		st, err := c.c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.Height
	}
	time.Sleep(time.Second) // the relay's first updates land
	a0, b0 := height(w.alpha), height(w.beta)
	time.Sleep(3 * time.Second)
	da, db := height(w.alpha)-a0, height(w.beta)-b0
	t.Logf("idle for 3 s: alpha committed %d blocks, beta %d", da, db)
	// Empty blocks come every 500 ms here (startChain), so 6 per chain; the
	// refreshes add a few.
	if da > 12 || db > 12 {
		t.Fatalf("idle chains committed %d and %d blocks in 3 s: the relay keeps them busy", da, db)
	}
	id := w.dvp(t, 1, 1)
	if a, b := w.waitFinal(t, id, 30*time.Second); a != crosschain.Committed || b != crosschain.Committed {
		t.Fatalf("dvp after idling: legs %s / %s, want committed", a, b)
	}
}
