package testnet_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/node"
	"github.com/plugchain/plug/chain/validator"
	"github.com/plugchain/plug/chain/valset"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/spv"
	"github.com/plugchain/plug/testnet"
)

// TestEquivocatorJailed runs two chains of four validator processes and a relay;
// alpha-val-4 signs a conflicting vote beside each of its votes
// (PLUG_TEST_EQUIVOCATE). The other validators submit the evidence, alpha jails
// val-4 (it leaves the validator set, its bond returns to its balance), alpha
// keeps committing with the other three, and beta's light client of alpha
// follows the set change: its next set no longer holds val-4.
func TestEquivocatorJailed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two 4-validator chains and a relay; skipped with -short")
	}
	dir := testnetDir(t)
	const offender = "alpha-val-4"
	up := exec.Command(plugBin, "testnet", "up", "--dir", dir, "--chains", "2", "--validators", "4", "--detach", "--output", "json")
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PLUG_") && !strings.HasPrefix(e, "HOME=") {
			up.Env = append(up.Env, e)
		}
	}
	up.Env = append(up.Env, "HOME="+t.TempDir(), "PLUG_TEST_EQUIVOCATE="+offender)
	var errb bytes.Buffer
	up.Stderr = &errb
	if err := up.Run(); err != nil {
		t.Fatalf("testnet up: %v\n%s", err, errb.String())
	}
	m, err := testnet.LoadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	alpha, _ := m.Chain("alpha")
	beta, _ := m.Chain("beta")
	addr := nodeAddress(t, alpha, offender)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ca, err := client.New([]string{alpha.Nodes[0].HTTP})
	if err != nil {
		t.Fatal(err)
	}
	cb, err := client.New([]string{beta.Nodes[0].HTTP})
	if err != nil {
		t.Fatal(err)
	}

	var rec validator.JailRecord
	within(t, time.Minute, "alpha jails "+offender, func() (bool, string) {
		res, err := ca.State(ctx, 0, validator.JailKey(addr), false)
		if err != nil || !res.Found {
			return false, fmt.Sprint("no jail record yet ", err)
		}
		return res.Decode(&rec) == nil, fmt.Sprintf("%+v", rec)
	})
	t.Logf("jailed: %+v", rec)
	if rec.Power == 0 || rec.Released || !strings.Contains(rec.Reason, "equivocation") {
		t.Fatalf("jail record %+v", rec)
	}
	var set valset.Set
	res, err := ca.State(ctx, 0, validator.SetKey, false)
	if err != nil || res.Decode(&set) != nil {
		t.Fatalf("read alpha's set: %v", err)
	}
	if set.Find(addr) >= 0 || len(set) != 3 {
		t.Fatalf("alpha's set still holds %s: %v", offender, set)
	}
	// The admin releases it: the record stays, marked released.
	plug(t, nil, "tx", "unjail", "--testnet", dir, "--chain", "alpha", "--from", "admin", "--address", addr.String(), "--wait", "--output", "json")
	res, err = ca.State(ctx, 0, validator.JailKey(addr), false)
	if err != nil || res.Decode(&rec) != nil || !rec.Released {
		t.Fatalf("after unjail: %+v %v", rec, err)
	}
	// alpha goes on deciding with three of its four validators.
	h0 := height(t, ctx, ca)
	within(t, 30*time.Second, "alpha committing after the jailing", func() (bool, string) {
		h := height(t, ctx, ca)
		return h >= h0+3, fmt.Sprintf("height %d, was %d", h, h0)
	})
	// beta's light client of alpha trusts the new set from the jailing height on.
	within(t, 90*time.Second, "beta's light client following alpha's new set", func() (bool, string) {
		res, err := cb.State(ctx, 0, crosschain.LCKey("alpha"), false)
		if err != nil || !res.Found {
			return false, fmt.Sprint("no client ", err)
		}
		var c spv.ClientState
		if err := res.Decode(&c); err != nil {
			return false, err.Error()
		}
		return c.Height > rec.Height && c.NextSet.Find(addr) < 0 && !c.Frozen,
			fmt.Sprintf("client at %d (jailed at %d), next set of %d, frozen %v", c.Height, rec.Height, len(c.NextSet), c.Frozen)
	})
}

// TestAbsentValidatorUnstaked runs one chain of four validator processes whose
// genesis unstakes validators missing from 8 consecutive commit certificates;
// alpha-val-4 is killed, and after 8 more blocks it holds no power, its bond
// returned to its balance; alpha goes on committing with the other three, and a
// restarted val-4 follows the chain as a node without power.
func TestAbsentValidatorUnstaked(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 4-validator chain; skipped with -short")
	}
	dir := testnetDir(t)
	topo := filepath.Join(t.TempDir(), "net.toml")
	if err := os.WriteFile(topo, []byte("[[chains]]\nvalidators = 4\n[chains.accountability]\nabsent_heights = 8\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	plug(t, nil, "testnet", "up", "--dir", dir, "--topology", topo, "--detach", "--output", "json")
	m, err := testnet.LoadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	const victim = "alpha-val-4"
	addr := nodeAddress(t, &m.Chains[0], victim)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := client.New([]string{m.Chains[0].Nodes[0].HTTP})
	if err != nil {
		t.Fatal(err)
	}
	within(t, 30*time.Second, "alpha past height 3", func() (bool, string) {
		h := height(t, ctx, c)
		return h >= 3, fmt.Sprint("height ", h)
	})
	plug(t, nil, "testnet", "kill", "--dir", dir, victim)
	killed := height(t, ctx, c)
	var set valset.Set
	within(t, time.Minute, victim+" unstaked", func() (bool, string) {
		res, err := c.State(ctx, 0, validator.SetKey, false)
		if err != nil || res.Decode(&set) != nil {
			return false, fmt.Sprint(err)
		}
		return set.Find(addr) < 0, fmt.Sprintf("height %d (killed at %d), %d validators", height(t, ctx, c), killed, len(set))
	})
	h := height(t, ctx, c)
	t.Logf("%s killed at height %d, out of the set by height %d", victim, killed, h)
	if h < killed+8 || len(set) != 3 {
		t.Fatalf("unstaked at height %d, killed at %d (rule: 8 heights); set %v", h, killed, set)
	}
	var bal uint64
	if res, err := c.State(ctx, 0, asset.BalanceKey(genesis.DefaultStakingAsset, addr), false); err != nil || res.Decode(&bal) != nil || bal != 100 {
		t.Fatalf("bond not returned: balance %d, %v", bal, err)
	}
	if res, err := c.State(ctx, 0, validator.JailKey(addr), false); err != nil || res.Found {
		t.Fatalf("an absent validator is not jailed: %v %v", res, err)
	}
	plug(t, nil, "testnet", "restart", "--dir", dir, victim, "--wait")
	within(t, 30*time.Second, "alpha committing without "+victim, func() (bool, string) {
		g := height(t, ctx, c)
		return g >= h+3, fmt.Sprintf("height %d, was %d", g, h)
	})
}

// nodeAddress is the account address of node name's key.
func nodeAddress(t *testing.T, c *testnet.Chain, name string) crypto.Address {
	t.Helper()
	for _, n := range c.Nodes {
		if n.Name == name {
			key, err := node.ReadNodeKey(filepath.Join(n.Home, node.NodeKeyFile))
			if err != nil {
				t.Fatal(err)
			}
			return key.Public().Address()
		}
	}
	t.Fatalf("chain %s has no node %s", c.ChainID, name)
	return crypto.Address{}
}

func height(t *testing.T, ctx context.Context, c *client.Client) uint64 {
	t.Helper()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st.Height
}
