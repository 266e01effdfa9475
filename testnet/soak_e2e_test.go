package testnet_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	chainexec "github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/keyring"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/settlement"
	"github.com/plugchain/plug/testnet"
)

// soak is the shared state of TestExactlyOnceSoak.
type soak struct {
	t     *testing.T
	dir   string
	m     *testnet.Manifest
	keys  *keyring.Keyring
	stop  atomic.Bool
	mu    sync.Mutex
	count map[string]int
	// transfers are every transfer intent, by chain.
	transfers []*transferIntent
	// trades are every trade reference used, with each run's answer.
	trades []*tradeIntent
	// at is the height of each chain that the checks read, so that a node
	// still catching up after a restart cannot answer an older state.
	at map[string]uint64
}

// tradeIntent is one DvP under one reference: alice delivers EUR on alpha
// against bob's USD on beta, submitted by `plug settle dvp` processes.
type tradeIntent struct {
	ref                string
	delivery, payment  uint64
	ids                []string // the trade id each run reported
	state              string   // the last run's answer: committed, aborted, pending
	otherTermsRefused  bool
	otherTermsAttempts int
}

func (s *soak) add(what string, n int) {
	s.mu.Lock()
	s.count[what] += n
	s.mu.Unlock()
}

// transferIntent is one transfer a client meant to make, and what became of it.
type transferIntent struct {
	chain   string
	to      crypto.Address
	amount  uint64
	tx      *tx.Tx // the one signed transaction that was admitted somewhere
	outcome string // committed, dropped, refused, pending
	reason  string
}

func (s *soak) key(name string) crypto.PrivateKey {
	s.t.Helper()
	k, err := s.keys.Get(name)
	if err != nil {
		s.t.Fatal(err)
	}
	return k
}

// endpoints returns the gateways of chain, in manifest order.
func (s *soak) endpoints(chain string) []string {
	for _, c := range s.m.Chains {
		if c.ChainID == chain {
			var out []string
			for _, n := range c.Nodes {
				out = append(out, n.HTTP)
			}
			return out
		}
	}
	s.t.Fatalf("no chain %s", chain)
	return nil
}

// one returns a client of one random node of chain (no failover: as a client
// that picked a node would be).
func (s *soak) one(chain string, r *rand.Rand) *client.Client {
	eps := s.endpoints(chain)
	c, err := client.New([]string{eps[r.IntN(len(eps))]}, client.WithChainID(chain), client.WithTimeout(3*time.Second))
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// all returns a client of every node of chain, starting at a random one.
func (s *soak) all(chain string, r *rand.Rand) *client.Client {
	eps := s.endpoints(chain)
	r.Shuffle(len(eps), func(i, j int) { eps[i], eps[j] = eps[j], eps[i] })
	c, err := client.New(eps, client.WithChainID(chain), client.WithTimeout(3*time.Second))
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// transferClient makes transfers of USD from signer to its own recipient on
// chain until the soak stops: each is signed once, sent to a random node, sent
// again (the same bytes) to another random node, and followed to its end. It
// signs anew only a transaction no node admitted (a nonce conflict: another
// client of the same signer took the nonce).
func (s *soak) transferClient(ctx context.Context, chain, signer string, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 7))
	k := s.key(signer)
	var to crypto.Address
	for i := range to {
		to[i] = byte(r.Uint32())
	}
	for !s.stop.Load() {
		in := &transferIntent{chain: chain, to: to, amount: 1 + r.Uint64N(100)}
		s.mu.Lock()
		s.transfers = append(s.transfers, in)
		s.mu.Unlock()
		s.transfer(ctx, r, k, in)
	}
}

func (s *soak) transfer(ctx context.Context, r *rand.Rand, k crypto.PrivateKey, in *transferIntent) {
	var t *tx.Tx
	for attempt := 0; ; attempt++ {
		c := s.one(in.chain, r)
		n, err := c.Nonce(ctx, k.Public().Address())
		if err != nil {
			if attempt > 50 {
				in.outcome, in.reason = "refused", "no node answered: "+err.Error()
				return
			}
			time.Sleep(100 * time.Millisecond) // that node is down: pick another
			continue
		}
		t, err = tx.New(app.Registry(), in.chain, &asset.Transfer{Asset: "USD", From: k.Public().Address(), To: in.to, Amount: in.amount},
			tx.Signer{Key: k.Public(), Nonce: n})
		if err != nil {
			s.t.Error(err)
			return
		}
		if err := t.Sign(k); err != nil {
			s.t.Error(err)
			return
		}
		_, err = c.Submit(ctx, t, false, 0)
		switch {
		case err == nil:
		case errors.Is(err, client.ErrNonceConflict) && attempt < 50:
			s.add("transfer nonce conflicts (signed anew: never admitted)", 1)
			continue
		case client.IsConnError(err):
			// It may have been admitted before the node died: follow it, never
			// sign another.
		case err != nil:
			in.outcome, in.reason, in.tx = "refused", err.Error(), t
			return
		}
		break
	}
	in.tx = t
	// The same bytes again, to another node: harmless whatever happened.
	if _, err := s.one(in.chain, r).Submit(ctx, t, false, 0); err == nil {
		s.add("transfer resubmissions admitted or answered", 1)
	} else {
		s.add("transfer resubmissions refused ("+errClass(err)+")", 1)
	}
	res, err := s.all(in.chain, r).Await(ctx, t, 90*time.Second)
	var d *client.DroppedError
	switch {
	case err == nil && res != nil && res.Code != chainexec.OK:
		// Committed but not applied: it moved nothing, and a funded
		// transfer must not fail; checkTransfers reports it.
		in.outcome, in.reason = "failed", res.Code.String()+": "+res.Error
	case err == nil && res != nil:
		in.outcome, in.reason = "committed", res.Code.String()
	case errors.As(err, &d):
		in.outcome, in.reason = "dropped", d.Status.Reason
	default:
		in.outcome, in.reason = "pending", fmt.Sprint(err)
	}
}

func errClass(err error) string {
	for _, c := range []struct {
		e    error
		name string
	}{{client.ErrNonceConflict, "nonce conflict"}, {client.ErrDropped, "dropped"}, {client.ErrBusy, "busy"}} {
		if errors.Is(err, c.e) {
			return c.name
		}
	}
	if client.IsConnError(err) {
		return "node down"
	}
	return "other"
}

// tradeClient runs DvPs until the soak stops: each reference is submitted
// with --wait, then submitted again with the same terms (it must be the same
// trade), and now and then with other terms (it must be refused).
func (s *soak) tradeClient(g int, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 11))
	for k := 0; !s.stop.Load(); k++ {
		in := &tradeIntent{ref: fmt.Sprintf("soak-%d-%d-%d", seed%1000, g, k), delivery: 1 + r.Uint64N(50), payment: 1 + r.Uint64N(50)}
		s.mu.Lock()
		s.trades = append(s.trades, in)
		s.mu.Unlock()
		if r.IntN(4) == 0 {
			// A run killed part way (the user's Ctrl-C, a crashed machine): the
			// runs after it must find what it did and finish it, not repeat it.
			s.killedRun(in, time.Duration(100+r.IntN(900))*time.Millisecond)
		}
		for run := range 2 {
			s.settle(in, in.delivery)
			if run == 0 && r.IntN(3) == 0 {
				in.otherTermsAttempts++
				if err := plugErr(s.t, nil, s.dvpArgs(in, in.delivery+1)...); err != nil && strings.Contains(err.Error(), "already used by trade") {
					in.otherTermsRefused = true
				}
			}
		}
	}
}

func (s *soak) dvpArgs(in *tradeIntent, delivery uint64) []string {
	return []string{"settle", "dvp", "--testnet", s.dir, "--seller", "alice", "--buyer", "bob",
		"--delivery", fmt.Sprintf("alpha:EUR:%d", delivery), "--payment", fmt.Sprintf("beta:USD:%d", in.payment),
		"--ref", in.ref, "--deadline", "15s", "--wait", "--timeout", "40s", "--output", "json"}
}

func (s *soak) settle(in *tradeIntent, delivery uint64) {
	var out struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Final  bool   `json:"final"`
	}
	err := plugErr(s.t, &out, s.dvpArgs(in, delivery)...)
	s.add("trade runs", 1)
	if out.ID == "" {
		s.add("trade runs without an answer (a node or the relay down at the time)", 1)
		s.t.Logf("trade %s: %v", in.ref, firstLine(err))
		return
	}
	in.ids = append(in.ids, out.ID)
	in.state = out.Status
	if !out.Final {
		in.state = "pending"
	}
}

// killedRun starts `plug settle dvp` for in and SIGKILLs it after d.
func (s *soak) killedRun(in *tradeIntent, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, plugBin, s.dvpArgs(in, in.delivery)...)
	cmd.Env = append(os.Environ(), "HOME="+s.t.TempDir())
	if err := cmd.Run(); err != nil && ctx.Err() != nil {
		s.add("trade runs SIGKILLed part way", 1)
	}
}

func firstLine(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	if i := strings.Index(msg, "stderr: "); i >= 0 {
		msg = msg[i:]
	}
	if len(msg) > 300 {
		msg = msg[:300]
	}
	return msg
}

// chaos SIGKILLs a random validator (one at a time) and restarts it, and now
// and then the relay, until the soak stops.
func (s *soak) chaos(r *rand.Rand) {
	opts := testnet.Options{Exe: plugBin}
	var nodes []string
	for _, c := range s.m.Chains {
		for _, n := range c.Nodes {
			nodes = append(nodes, n.Name)
		}
	}
	for i := 0; !s.stop.Load(); i++ {
		victim := nodes[r.IntN(len(nodes))]
		if i%3 == 2 && len(s.m.Relays) > 0 {
			victim = s.m.Relays[0].Name
		}
		if err := testnet.Kill(s.dir, victim); err != nil {
			s.t.Errorf("kill %s: %v", victim, err)
			return
		}
		s.add("SIGKILLs", 1)
		time.Sleep(time.Duration(1500+r.IntN(2500)) * time.Millisecond)
		if err := testnet.Restart(s.dir, victim, opts); err != nil {
			s.t.Errorf("restart %s: %v", victim, err)
			return
		}
		time.Sleep(time.Duration(1000+r.IntN(2000)) * time.Millisecond)
	}
}

// TestExactlyOnceSoak runs clients against a two-chain testnet of real
// processes while validators and the relay are SIGKILLed and restarted. Transfer
// clients (two of them sharing a signer) send each transaction to a random node
// and again to another; trade clients run `plug settle dvp` with a reference,
// run it again with the same terms, and now and then with other terms. At the
// end every transfer is committed exactly once or has a clear answer (refused,
// dropped), every recipient holds exactly what its committed transfers sent,
// every reference names one trade that settled at most once and finished with
// no escrow left, balances moved by exactly the committed trades, and every
// asset's supply is what genesis made. The test prints the counts.
func TestExactlyOnceSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a two-chain testnet; skipped with -short")
	}
	start := time.Now()
	dir := testnetDir(t)
	plug(t, nil, "testnet", "up", "--dir", dir, "--chains", "2", "--validators", "4", "--detach", "--output", "json")
	m, err := testnet.LoadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.Open(filepath.Join(dir, testnet.KeyringDir), keyring.Test, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &soak{t: t, dir: dir, m: m, keys: kr, count: map[string]int{}}
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d (the schedule of kills and amounts; processes add their own timing)", seed)

	var wg sync.WaitGroup
	clients := []struct{ chain, signer string }{{"alpha", "carol"}, {"alpha", "carol"}, {"beta", "carol"}}
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.transferClient(ctx, c.chain, c.signer, seed+uint64(i))
		}()
	}
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.tradeClient(g, seed+uint64(100+g))
		}()
	}
	chaosDone := make(chan struct{})
	go func() {
		defer close(chaosDone)
		s.chaos(rand.New(rand.NewPCG(seed, 99)))
	}()
	time.Sleep(45 * time.Second)
	s.stop.Store(true)
	<-chaosDone
	wg.Wait()
	t.Logf("clients stopped: %v", time.Since(start))
	s.pinHeights(ctx)
	s.checkTransfers(ctx)
	s.checkTrades(ctx)
	s.checkSupply(ctx)
	s.report(time.Since(start))
}

// pinHeights waits until every node of each chain answers and fixes the
// height the checks read: the highest any node has committed by then.
func (s *soak) pinHeights(ctx context.Context) {
	s.at = map[string]uint64{}
	for _, ch := range s.m.Chains {
		for _, ep := range s.endpoints(ch.ChainID) {
			c, err := client.New([]string{ep}, client.WithChainID(ch.ChainID), client.WithTimeout(3*time.Second))
			if err != nil {
				s.t.Fatal(err)
			}
			deadline := time.Now().Add(60 * time.Second)
			for {
				st, err := c.Status(ctx)
				if err == nil {
					s.at[ch.ChainID] = max(s.at[ch.ChainID], st.Height)
					break
				}
				if time.Now().After(deadline) {
					s.t.Fatalf("%s: node %s does not answer: %v", ch.ChainID, ep, err)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
}

// balance reads addr's balance of assetName at the chain's pinned height,
// waiting for a node that has reached it.
func (s *soak) balance(ctx context.Context, c *client.Client, chain, assetName string, addr crypto.Address) uint64 {
	deadline := time.Now().Add(60 * time.Second)
	for {
		v, _, err := c.ProvenBalance(ctx, assetName, addr, s.at[chain], false)
		if err == nil {
			return v
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: balance of %s at height %d: %v", chain, addr.String()[:8], s.at[chain], err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkTransfers checks every transfer intent's end and that each recipient
// holds exactly the sum of its committed transfers.
func (s *soak) checkTransfers(ctx context.Context) {
	t := s.t
	r := rand.New(rand.NewPCG(1, 1))
	want := map[string]map[crypto.Address]uint64{}
	for _, in := range s.transfers {
		s.add("transfer intents: "+in.outcome, 1)
		switch in.outcome {
		case "pending":
			t.Errorf("transfer of %d on %s has no answer: %s", in.amount, in.chain, in.reason)
		case "failed":
			id, _ := in.tx.ID()
			t.Errorf("transfer %s of %d on %s committed without effect: %s", id.Short(), in.amount, in.chain, in.reason)
		}
		if want[in.chain] == nil {
			want[in.chain] = map[crypto.Address]uint64{}
		}
		if in.outcome == "committed" {
			want[in.chain][in.to] += in.amount
		}
		if in.outcome == "dropped" || in.outcome == "refused" && in.tx != nil {
			id, _ := in.tx.ID()
			if res, err := s.all(in.chain, r).TxResult(ctx, id); err == nil {
				t.Errorf("transfer %s answered %s but is committed at height %d", id.Short(), in.outcome, res.Height)
			}
		}
	}
	for chain, byAddr := range want {
		c := s.all(chain, r)
		for a, sum := range byAddr {
			got := s.balance(ctx, c, chain, "USD", a)
			if got != sum {
				t.Errorf("%s: recipient %s holds %d, its committed transfers sent %d", chain, a.String()[:8], got, sum)
				s.explainBalance(ctx, c, chain, a)
			}
		}
	}
}

// explainBalance looks for the heights at which addr's balance did not move by
// the committed transfers to it: a failing run then names the transactions and
// blocks to look at.
func (s *soak) explainBalance(ctx context.Context, c *client.Client, chain string, addr crypto.Address) {
	byHeight := map[uint64]uint64{}
	ids := map[uint64][]string{}
	for _, in := range s.transfers {
		if in.chain != chain || in.to != addr || in.outcome != "committed" {
			continue
		}
		id, _ := in.tx.ID()
		res, err := c.TxResult(ctx, id)
		if err != nil {
			s.t.Errorf("  transfer %s of %d answered committed, now: %v", id.Short(), in.amount, err)
			continue
		}
		byHeight[res.Height] += in.amount
		ids[res.Height] = append(ids[res.Height], id.Short())
	}
	for h, sum := range byHeight {
		before, _, err1 := c.ProvenBalance(ctx, "USD", addr, h-1, true)
		after, _, err2 := c.ProvenBalance(ctx, "USD", addr, h, true)
		if err1 != nil || err2 != nil {
			s.t.Errorf("  height %d: cannot read the balance around it: %v %v", h, err1, err2)
			continue
		}
		if after-before != sum {
			s.t.Errorf("  height %d: balance moved %d -> %d, the committed transfers %v there sent %d", h, before, after, ids[h], sum)
		}
	}
}

// checkTrades follows every trade to its end (its deadline plus the relay's
// bound at most) and checks that each reference names one trade, settled at
// most once, and that alice's and bob's balances moved by exactly the
// committed trades.
func (s *soak) checkTrades(ctx context.Context) {
	t := s.t
	r := rand.New(rand.NewPCG(3, 3))
	readers := map[string]settlement.Reader{}
	for _, c := range s.m.Chains {
		readers[c.ChainID] = s.all(c.ChainID, r)
	}
	alice, bob := s.addr("alice"), s.addr("bob")
	var eur, usd uint64 // moved by committed trades
	for _, in := range s.trades {
		var prev *settlement.RefTrade
		var err error
		for _, p := range []crypto.Address{alice, bob} {
			rt, lerr := settlement.LookupRef(ctx, readers, []string{"alpha", "beta"}, p, in.ref, true)
			switch {
			case errors.Is(lerr, settlement.ErrRefNotFound):
			case lerr != nil:
				err = lerr
			case prev != nil && rt.ID != prev.ID:
				t.Errorf("ref %s names trade %s for one party and %s for the other", in.ref, prev.ID.Short(), rt.ID.Short())
			default:
				prev = rt
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		if prev == nil {
			s.add("trade refs never on the chains (every run failed before a prepare)", 1)
			continue
		}
		for _, id := range in.ids {
			if id != prev.ID.String() {
				t.Errorf("ref %s: a run reported trade %s, the chains hold %s", in.ref, id[:12], prev.ID.Short())
			}
		}
		if in.otherTermsAttempts > 0 && !in.otherTermsRefused {
			t.Errorf("ref %s: a run with other terms was not refused", in.ref)
		}
		// Final within the deadline and the relay's bound: no escrow left.
		deadline := time.UnixMilli(prev.XTx.Deadline).Add(time.Minute)
		var st *settlement.Status
		for {
			if st, err = settlement.Query(ctx, &prev.XTx, readers, true); err != nil {
				t.Fatal(err)
			}
			if st.Final || time.Now().After(deadline) {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		if !st.Final {
			t.Errorf("trade %s (ref %s) not final a minute past its deadline: %s", st.ID[:12], in.ref, st.State)
			continue
		}
		for i, l := range prev.XTx.Legs {
			res, err := readers[l.Chain].State(ctx, 0, crosschain.EscrowKey(prev.ID, i), true)
			if err != nil {
				t.Fatal(err)
			}
			if res.Found {
				t.Errorf("trade %s leg %d: escrow left after it finished", st.ID[:12], i)
			}
		}
		s.add("trade refs: "+string(st.State), 1)
		if len(in.ids) > 1 {
			s.add("trade re-runs that reported the same trade", len(in.ids)-1)
		}
		if in.otherTermsRefused {
			s.add("trade runs with other terms under a used ref: refused", 1)
		}
		if st.State == settlement.Committed {
			eur += prev.XTx.Legs[legOn(prev.XTx, "alpha")].Amount
			usd += prev.XTx.Legs[legOn(prev.XTx, "beta")].Amount
		}
	}
	s.pinHeights(ctx) // every trade has ended: read the states they left
	check := func(chain, a string, who crypto.Address, want uint64) {
		got := s.balance(ctx, s.all(chain, r), chain, a, who)
		if got != want {
			t.Errorf("%s: %s holds %d %s, the committed trades give %d", chain, who.String()[:8], got, a, want)
		}
	}
	check("alpha", "EUR", alice, testnet.InitialBalance-eur)
	check("alpha", "EUR", bob, testnet.InitialBalance+eur)
	check("beta", "USD", bob, testnet.InitialBalance-usd)
	check("beta", "USD", alice, testnet.InitialBalance+usd)
}

func legOn(x crosschain.XTx, chain string) int {
	for i, l := range x.Legs {
		if l.Chain == chain {
			return i
		}
	}
	return -1
}

func (s *soak) addr(name string) crypto.Address {
	info, err := s.keys.Info(name)
	if err != nil {
		s.t.Fatal(err)
	}
	return info.Address
}

// checkSupply checks, on every chain, that each asset's supply is what genesis
// made and that the balances of every account that can hold it add up to it:
// nothing created, nothing lost, nothing left in escrow.
func (s *soak) checkSupply(ctx context.Context) {
	t := s.t
	r := rand.New(rand.NewPCG(2, 2))
	holders := map[string][]crypto.Address{}
	for _, name := range []string{"alice", "bob", "carol"} {
		info, err := s.keys.Info(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range s.m.Chains {
			holders[c.ChainID] = append(holders[c.ChainID], info.Address)
		}
	}
	seen := map[string]map[crypto.Address]bool{}
	for _, in := range s.transfers {
		if seen[in.chain] == nil {
			seen[in.chain] = map[crypto.Address]bool{}
		}
		if !seen[in.chain][in.to] {
			seen[in.chain][in.to] = true
			holders[in.chain] = append(holders[in.chain], in.to)
		}
	}
	for _, ch := range s.m.Chains {
		c := s.all(ch.ChainID, r)
		for _, a := range testnet.Assets {
			res, err := c.State(ctx, s.at[ch.ChainID], asset.SupplyKey(a), false)
			if err != nil {
				t.Fatal(err)
			}
			var supply uint64
			if err := res.Decode(&supply); err != nil {
				t.Fatal(err)
			}
			if want := uint64(3 * testnet.InitialBalance); supply != want {
				t.Errorf("%s: supply of %s is %d, genesis made %d", ch.ChainID, a, supply, want)
			}
			var sum uint64
			for _, h := range holders[ch.ChainID] {
				sum += s.balance(ctx, c, ch.ChainID, a, h)
			}
			if sum != supply {
				t.Errorf("%s: balances of %s add up to %d, supply %d (escrow left, or value created or lost)", ch.ChainID, a, sum, supply)
			}
		}
	}
}

func (s *soak) report(took time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t.Logf("soak of %v:", took.Round(time.Second))
	for _, k := range sortedKeys(s.count) {
		s.t.Logf("  %-60s %d", k, s.count[k])
	}
}

func sortedKeys(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}
