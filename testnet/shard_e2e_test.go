package testnet_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/plugchain/plug/crosschain/shard"
	"github.com/plugchain/plug/testnet"
)

// netTransfer is `plug tx transfer --network ... --output json`.
type netTransfer struct {
	shard.TransferResult
	Final bool `json:"final"`
	OK    bool `json:"ok"`
}

// TestShardedEndToEnd starts `plug testnet up --shards 3` as real processes and
// drives it through the CLI's --network: placement, an intra-shard and a
// cross-shard transfer, a cross-shard transfer the payer cannot fund (aborted,
// refunded), one whose payee shard is halted (a validator killed) until it
// restarts, and proven aggregate queries that show every asset conserved.
func TestShardedEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three shard chains and a relay; skipped with -short")
	}
	dir := testnetDir(t)
	var up testnet.Report
	plug(t, &up, "testnet", "up", "--dir", dir, "--shards", "3", "--validators", "2", "--detach", "--output", "json")
	netFile := filepath.Join(dir, testnet.NetworkFile)
	if up.Network != netFile || len(up.Chains) != 3 || len(up.Relays) != 1 {
		t.Fatalf("up: want 3 shards, a relay and %s, got %+v", netFile, up)
	}
	home := map[string]string{}
	for _, a := range []string{"alice", "bob", "carol"} {
		var p struct {
			Shard string `json:"shard"`
		}
		plug(t, &p, "network", "place", "--network", netFile, "--account", a, "--output", "json")
		home[a] = p.Shard
	}
	t.Logf("placement: %v", home)
	// Find a pair on one shard and a pair on two (the placement of the testnet's
	// random keys decides which accounts those are).
	var intra, cross [2]string
	names := []string{"alice", "bob", "carol"}
	for _, a := range names {
		for _, b := range names {
			switch {
			case a == b:
			case home[a] == home[b] && intra[0] == "":
				intra = [2]string{a, b}
			case home[a] != home[b] && cross[0] == "":
				cross = [2]string{a, b}
			}
		}
	}
	var supply0 shard.Aggregate
	plug(t, &supply0, "query", "supply", "--network", netFile, "--asset", "USD", "--prove", "--output", "json")
	if supply0.Total != 3*testnet.InitialBalance {
		t.Fatalf("USD supply over the shards %d, want %d", supply0.Total, 3*testnet.InitialBalance)
	}
	transfer := func(from, to string, amount string, extra ...string) netTransfer {
		var r netTransfer
		args := append([]string{"tx", "transfer", "--network", netFile, "--from", from, "--to", to, "--asset", "USD",
			"--amount", amount, "--output", "json"}, extra...)
		if err := plugErr(t, &r, args...); err != nil && r.Route == "" {
			t.Fatal(err)
		}
		return r
	}
	if intra[0] != "" {
		r := transfer(intra[0], intra[1], "7", "--wait")
		if r.Route != shard.RouteIntra || !r.OK {
			t.Fatalf("%s -> %s: %+v", intra[0], intra[1], r)
		}
	}
	if cross[0] == "" {
		// Every testnet account landed on one shard: add keys until one lives
		// elsewhere (a new account holds nothing; it only receives).
		kr := []string{"--keyring-dir", filepath.Join(dir, testnet.KeyringDir), "--keyring-backend", "test"}
		for i := 0; cross[0] == "" && i < 50; i++ {
			name := fmt.Sprintf("payee-%d", i)
			plug(t, nil, append([]string{"keys", "add", name}, kr...)...)
			var p struct {
				Shard string `json:"shard"`
			}
			plug(t, &p, "network", "place", "--network", netFile, "--account", name, "--output", "json")
			if home[name] = p.Shard; p.Shard != home["alice"] {
				cross = [2]string{"alice", name}
			}
		}
	}
	balanceOf := func(account string) uint64 {
		var b struct {
			Balance uint64 `json:"balance"`
		}
		plug(t, &b, "query", "balance", "--network", netFile, "--account", account, "--asset", "USD", "--output", "json")
		return b.Balance
	}
	payer, payee := cross[0], cross[1]
	payee0 := balanceOf(payee)
	t0 := time.Now()
	r := transfer(payer, payee, "250", "--wait")
	if r.Route != shard.RouteCross || !r.OK || r.FromShard != home[payer] || r.ToShard != home[payee] {
		t.Fatalf("%s -> %s: %+v (status %+v)", payer, payee, r, r.Status)
	}
	t.Logf("cross-shard transfer %s -> %s committed in %v", r.FromShard, r.ToShard, time.Since(t0))
	// The CLI recorded it in the testnet's trade store: xchain status finds it.
	var st struct {
		Status string `json:"status"`
		Final  bool   `json:"final"`
		Legs   []struct {
			Chain  string `json:"chain"`
			Status string `json:"status"`
		} `json:"legs"`
	}
	plug(t, &st, "xchain", "status", r.XTxID, "--testnet", dir, "--prove", "--output", "json")
	if st.Status != "committed" || !st.Final || len(st.Legs) != 2 || st.Legs[1].Chain != home[payee] {
		t.Fatalf("xchain status of the cross-shard transfer: %+v", st)
	}

	r = transfer(payer, payee, "99999999999", "--wait")
	if r.Route != shard.RouteCross || !r.Final || r.OK || r.Status.Reason == "" {
		t.Fatalf("unfunded cross-shard transfer: %+v (status %+v)", r, r.Status)
	}

	// The payee's shard halts: with one of its two validators down it has no quorum.
	down := home[payee] + "-val-2"
	plug(t, nil, "testnet", "kill", "--dir", dir, down)
	r = transfer(payer, payee, "40")
	if r.Final {
		t.Fatalf("transfer to a halted shard is final already: %+v", r.Status)
	}
	plug(t, nil, "testnet", "restart", "--dir", dir, down)
	restarted := time.Now()
	wantPayee := payee0 + 250 + 40
	eventually(t, "the transfer to the restarted shard to arrive", func() (bool, string) {
		got := balanceOf(payee)
		return got == wantPayee, fmt.Sprintf("%s holds %d USD, want %d", payee, got, wantPayee)
	})
	t.Logf("the transfer to the halted shard arrived %v after its validator restarted", time.Since(restarted))

	var bal shard.Aggregate
	plug(t, &bal, "query", "balances", "--network", netFile, "--asset", "USD", "--accounts", payer+","+payee, "--prove", "--output", "json")
	if got := bal.Accounts[1].Amount; got != wantPayee || !bal.Accounts[1].Verified {
		t.Fatalf("%s holds %+v, want %d verified", payee, bal.Accounts[1], wantPayee)
	}
	var supply shard.Aggregate
	plug(t, &supply, "query", "supply", "--network", netFile, "--asset", "USD", "--prove", "--output", "json")
	if supply.Total != supply0.Total {
		t.Fatalf("USD supply over the shards %d after the transfers, %d before", supply.Total, supply0.Total)
	}
	for _, s := range supply.Shards {
		if !s.Verified {
			t.Fatalf("supply of %s not verified", s.Shard)
		}
	}
}
