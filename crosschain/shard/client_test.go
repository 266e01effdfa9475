package shard_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/node"
	"github.com/plugchain/plug/chain/node/nodetest"
	"github.com/plugchain/plug/crosschain/shard"
	"github.com/plugchain/plug/relay"
	"github.com/plugchain/plug/settlement"
)

func key(name string) crypto.PrivateKey {
	seed := sha256.Sum256([]byte("shard-test/" + name))
	k, err := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(seed[:]))
	if err != nil {
		panic(err)
	}
	return k
}

var (
	admin   = key("admin")
	relayer = key("relayer")
)

const funds = 1_000_000

// startShard starts a one-validator shard chain in process whose genesis defines
// USD and funds the given accounts.
func startShard(t *testing.T, id string, holders []crypto.Address) (string, *client.Client) {
	t.Helper()
	val := key(id + "/val")
	gen := genesis.Default(id, []crypto.PublicKey{val.Public()}, admin.Public().Address())
	for i := range gen.Roles {
		if gen.Roles[i].Name == app.RelayerRole {
			gen.Roles[i].Members = append(gen.Roles[i].Members, relayer.Public().Address().String())
		}
	}
	bal := map[string]uint64{}
	for _, h := range holders {
		bal[h.String()] = funds
	}
	gen.Assets = append(gen.Assets, genesis.Asset{Name: "USD", Issuer: "admin", Balances: bal})
	to := consensus.DefaultTimeouts()
	to.NewHeight, to.Heartbeat = 20, 500
	n, url := nodetest.Start(t, node.Config{Name: id, Genesis: gen, Key: val, Validator: true,
		Registry: app.Registry(), Models: app.Models(), Timeouts: to})
	c, err := client.New([]string{url}, client.WithChainID(id))
	if err != nil {
		t.Fatal(err)
	}
	nodetest.WaitHeight(t, n, 1)
	return url, c
}

// connect creates the light clients between every pair of shards.
func connect(t *testing.T, chains map[string]*client.Client) {
	t.Helper()
	for dst, dc := range chains {
		for src, sc := range chains {
			if src != dst {
				if _, err := relay.CreateClient(context.Background(), sc, dc, src, dst, admin, 1); err != nil {
					t.Fatalf("light client of %s on %s: %v", src, dst, err)
				}
			}
		}
	}
}

// runRelay runs a relay over the shards until the test ends.
func runRelay(t *testing.T, name string, urls map[string]string) {
	cfg := &relay.Config{Name: name, DB: filepath.Join(t.TempDir(), "relay.db"), Signer: relayer,
		PollInterval: relay.Duration{Duration: 50 * time.Millisecond}, RetryAfter: relay.Duration{Duration: 2 * time.Second}}
	for _, id := range []string{"shard-0", "shard-1", "shard-2"} {
		if u, ok := urls[id]; ok {
			cfg.Chains = append(cfg.Chains, relay.ChainConfig{ID: id, Endpoints: []string{u}})
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay %s: %v", name, err)
		}
	})
}

// onShard returns a key whose hash placement (generation gen of n) is id and, if
// not empty, whose placement in generation gen+1 is next.
func onShard(t *testing.T, n *shard.Network, label, id string, gen int, next string) crypto.PrivateKey {
	t.Helper()
	for i := 0; i < 10_000; i++ {
		k := key(fmt.Sprintf("%s-%d", label, i))
		a := k.Public().Address()
		if n.HashShard(a, gen) == id && (next == "" || n.HashShard(a, gen+1) == next) {
			return k
		}
	}
	t.Fatalf("no key placed on %s", id)
	return nil
}

func mustFinal(t *testing.T, r *shard.TransferResult, err error, wantOK bool) {
	t.Helper()
	if err != nil {
		t.Fatalf("transfer: %v", err)
	}
	final, ok := r.Done()
	if !final || ok != wantOK {
		t.Fatalf("transfer %+v (status %+v): final=%t ok=%t, want final, ok=%t", r, r.Status, final, ok, wantOK)
	}
}

// TestShardedNetwork runs a logical network of real nodes (in process, libp2p and
// bbolt) and a relay: intra- and cross-shard transfers through the shard client,
// a cross-shard transfer that aborts and refunds, aggregate queries proven
// against each shard's headers, and a third shard added to the running network:
// existing accounts stay put, a new account is placed on the new shard and is
// paid across shards.
func TestShardedNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nodes")
	}
	ctx := context.Background()
	// The future network decides who is placed where, before any chain exists.
	plan := &shard.Network{Name: "test", Assets: []string{"USD"}, Shards: []shard.Shard{{ChainID: "shard-0"}, {ChainID: "shard-1"}}}
	if err := plan.Check(); err != nil {
		t.Fatal(err)
	}
	bob := onShard(t, plan, "bob", "shard-1", 0, "")
	carol := onShard(t, plan, "carol", "shard-0", 0, "")
	// alice stays on shard-0 although generation 1 would place her on shard-2.
	probe := *plan
	probe.Shards = append(append([]shard.Shard(nil), plan.Shards...), shard.Shard{ChainID: "shard-2", Generation: 1})
	alice := onShard(t, &probe, "alice", "shard-0", 0, "shard-2")
	a, b, c := alice.Public().Address(), bob.Public().Address(), carol.Public().Address()

	u0, c0 := startShard(t, "shard-0", []crypto.Address{a, c})
	u1, c1 := startShard(t, "shard-1", []crypto.Address{b})
	connect(t, map[string]*client.Client{"shard-0": c0, "shard-1": c1})
	runRelay(t, "relay-1", map[string]string{"shard-0": u0, "shard-1": u1})
	plan.Shards[0].Endpoints, plan.Shards[1].Endpoints = []string{u0}, []string{u1}
	net := plan
	sc, err := shard.NewClient(net)
	if err != nil {
		t.Fatal(err)
	}

	r, err := sc.Transfer(ctx, alice, c, "USD", 100, true, 30*time.Second)
	mustFinal(t, r, err, true)
	if r.Route != shard.RouteIntra {
		t.Fatalf("alice -> carol routed %s, both are on shard-0", r.Route)
	}
	r, err = sc.Transfer(ctx, alice, b, "USD", 250, true, 60*time.Second)
	mustFinal(t, r, err, true)
	if r.Route != shard.RouteCross || r.FromShard != "shard-0" || r.ToShard != "shard-1" || r.Status.Coordinator != "shard-0" {
		t.Fatalf("alice -> bob: %+v", r)
	}
	r, err = sc.Transfer(ctx, bob, a, "USD", 5*funds, true, 60*time.Second)
	mustFinal(t, r, err, false)
	if r.Status.State != settlement.Aborted || r.Status.Reason == "" {
		t.Fatalf("unfunded transfer: %+v", r.Status)
	}

	bal, err := sc.Balances(ctx, "USD", []crypto.Address{a, b, c}, true)
	if err != nil {
		t.Fatal(err)
	}
	want := map[crypto.Address]uint64{a: funds - 350, b: funds + 250, c: funds + 100}
	for _, ab := range bal.Accounts {
		if ab.Amount != want[ab.Account] || !ab.Verified {
			t.Fatalf("balance %+v, want %d verified", ab, want[ab.Account])
		}
	}
	sup, err := sc.Supply(ctx, "USD", true)
	if err != nil {
		t.Fatal(err)
	}
	if sup.Total != 3*funds || len(sup.Shards) != 2 || !sup.Shards[0].Verified || sup.Shards[0].Amount != 2*funds-250 {
		t.Fatalf("supply %+v, want %d in total, shard-0 %d", sup, 3*funds, 2*funds-250)
	}

	// Add shard-2 to the running network.
	u2, c2 := startShard(t, "shard-2", nil)
	connect(t, map[string]*client.Client{"shard-0": c0, "shard-1": c1, "shard-2": c2})
	runRelay(t, "relay-2", map[string]string{"shard-0": u0, "shard-1": u1, "shard-2": u2})
	if err := net.AddShard("shard-2", []string{u2}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "network.toml")
	if err := net.Save(path); err != nil {
		t.Fatal(err)
	}
	if net, err = shard.Load(path); err != nil {
		t.Fatal(err)
	}
	sc, err = shard.NewClient(net)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := sc.Home(ctx, a); err != nil || h != "shard-0" {
		t.Fatalf("alice's home after adding shard-2: %q %v, want shard-0 (she exists there)", h, err)
	}
	dave := onShard(t, net, "dave", "shard-2", 1, "")
	d := dave.Public().Address()
	if h, err := sc.Home(ctx, d); err != nil || h != "shard-2" {
		t.Fatalf("new account's home: %q %v, want shard-2", h, err)
	}
	r, err = sc.Transfer(ctx, alice, d, "USD", 40, true, 60*time.Second)
	mustFinal(t, r, err, true)
	if r.FromShard != "shard-0" || r.ToShard != "shard-2" {
		t.Fatalf("alice -> dave: %+v", r)
	}
	r, err = sc.Transfer(ctx, dave, b, "USD", 15, true, 60*time.Second)
	mustFinal(t, r, err, true)
	db, err := sc.Balance(ctx, "USD", d, true)
	if err != nil || db.Amount != 25 || db.Shard != "shard-2" || !db.Verified {
		t.Fatalf("dave: %+v %v, want 25 USD on shard-2", db, err)
	}
	sup, err = sc.Supply(ctx, "USD", true)
	if err != nil {
		t.Fatal(err)
	}
	if sup.Total != 3*funds || len(sup.Shards) != 3 || sup.Shards[2].Amount != 25 {
		t.Fatalf("supply after adding shard-2: %+v, want %d in total, 25 on shard-2", sup, 3*funds)
	}
}
