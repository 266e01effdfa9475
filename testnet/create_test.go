package testnet

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/keyring"
	"github.com/plugchain/plug/chain/node"
	"github.com/plugchain/plug/crosschain/shard"
)

// TestCreate checks what up writes before it starts anything: the keyring,
// the manifest and node homes that chain/node loads.
func TestCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tn")
	topo := &Topology{Chains: []ChainSpec{{Validators: 4}, {ID: "beta", Validators: 2, FullNodes: 1}}}
	m, err := prepare(topo, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded.Chains) != 2 || len(loaded.Chains[1].Nodes) != 3 || loaded.Dir != m.Dir {
		t.Fatalf("manifest: %+v", loaded)
	}
	kr, err := keyring.Open(filepath.Join(dir, KeyringDir), keyring.Test, nil)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := kr.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range infos {
		names = append(names, in.Name)
	}
	for _, want := range append(slices.Clone(Accounts), "alpha-val-1", "beta-full-1") {
		if !slices.Contains(names, want) {
			t.Errorf("keyring has %v, not %s", names, want)
		}
	}
	admin, _ := kr.Info(Admin)
	bob, _ := kr.Info("bob")
	ports := map[string]bool{}
	for _, c := range m.Chains {
		for _, n := range c.Nodes {
			h, err := node.LoadHome(n.Home, app.Registry(), app.Models())
			if err != nil {
				t.Fatalf("%s: %v", n.Name, err)
			}
			if h.Config.Name != n.Name || h.Config.ChainID != c.ChainID || h.Config.Validator != n.Validator || h.Config.StateCacheNodes != TestnetStateCache {
				t.Errorf("%s: config %+v", n.Name, h.Config)
			}
			if len(h.Config.Peers) != len(c.Nodes)-1 {
				t.Errorf("%s: peers %v", n.Name, h.Config.Peers)
			}
			if ports[n.HTTP] || ports[n.P2P] {
				t.Errorf("%s: address used twice", n.Name)
			}
			ports[n.HTTP], ports[n.P2P] = true, true
			g := h.Config.Genesis
			if n.Validator && !slices.ContainsFunc(g.Validators, func(v genesis.Validator) bool { return v.Name == n.Name }) {
				t.Errorf("%s: not a genesis validator", n.Name)
			}
			var usd bool
			for _, a := range g.Assets {
				if a.Name == "USD" {
					usd = a.Issuer == "admin" && a.Balances[bob.Address.String()] == InitialBalance
				}
			}
			if !usd {
				t.Errorf("%s: genesis lacks USD issued by admin with bob's balance: %+v", n.Name, g.Assets)
			}
			if !slices.Contains(g.Roles[0].Members, admin.Address.String()) {
				t.Errorf("%s: admin is not in role %s", n.Name, g.Roles[0].Name)
			}
		}
	}
	if _, err := prepare(topo, dir, Options{}); err != nil {
		t.Errorf("a stopped testnet does not resume: %v", err)
	}
	if _, err := prepare(topo, t.TempDir()+"/..", Options{}); err == nil {
		t.Error("a non-empty directory without a testnet is accepted")
	}
}

// TestCreateSharded: a sharded topology writes the network file, and each account
// is funded on its home shard only.
func TestCreateSharded(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sh")
	topo := ShardTopology(3, 1)
	if err := topo.Normalize(); err != nil {
		t.Fatal(err)
	}
	m, err := prepare(topo, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	net, err := shard.Load(filepath.Join(dir, NetworkFile))
	if err != nil {
		t.Fatal(err)
	}
	if m.Network != filepath.Join(dir, NetworkFile) || len(net.Shards) != 3 || len(net.Relays) != 1 || net.Shards[2].ChainID != "shard-2" {
		t.Fatalf("network %+v, manifest %+v", net, m)
	}
	kr, err := keyring.Open(filepath.Join(dir, KeyringDir), keyring.Test, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alice", "bob", "carol"} {
		info, _ := kr.Info(name)
		home := net.HashShard(info.Address, 0)
		for i, c := range m.Chains {
			if got := net.Shards[i].Endpoints; len(got) != 1 || got[0] != c.Nodes[0].HTTP {
				t.Fatalf("%s endpoints %v, want its node %s", c.ChainID, got, c.Nodes[0].HTTP)
			}
			h, err := node.LoadHome(c.Nodes[0].Home, app.Registry(), app.Models())
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range h.Config.Genesis.Assets {
				if a.Name != "USD" {
					continue
				}
				_, funded := a.Balances[info.Address.String()]
				if funded != (c.ChainID == home) {
					t.Errorf("%s funded on %s: %t, its home is %s", name, c.ChainID, funded, home)
				}
			}
		}
	}
}
