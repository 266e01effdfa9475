package plugcli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/keyring"
	"github.com/plugchain/plug/chain/node"
	"github.com/plugchain/plug/chain/node/nodetest"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/settlement"
	"github.com/plugchain/plug/testnet"
)

// settleNet is a one-chain testnet ("alpha", one in-process validator) whose
// directory has a manifest and a test keyring with admin, alice and bob.
type settleNet struct {
	dir    string
	client *client.Client
	admin  crypto.PrivateKey
	alice  crypto.Address
}

func startSettleNet(t *testing.T) *settleNet {
	t.Helper()
	dir := t.TempDir()
	kr, err := keyring.Open(filepath.Join(dir, testnet.KeyringDir), keyring.Test, func() ([]byte, error) { return nil, errors.New("none") })
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]crypto.PrivateKey{}
	for _, n := range []string{"admin", "alice", "bob", "val"} {
		if _, err := kr.Add(n, crypto.Ed25519); err != nil {
			t.Fatal(err)
		}
		if keys[n], err = kr.Get(n); err != nil {
			t.Fatal(err)
		}
	}
	val, admin := keys["val"], keys["admin"]
	gen := genesis.Default("alpha", []crypto.PublicKey{val.Public()}, admin.Public().Address())
	for _, a := range []string{"USD", "EUR"} {
		gen.Assets = append(gen.Assets, genesis.Asset{Name: a, Issuer: "admin", Balances: map[string]uint64{
			keys["alice"].Public().Address().String(): 1000, keys["bob"].Public().Address().String(): 1000}})
	}
	if err := gen.Validate(xchainRegistry()); err != nil {
		t.Fatal(err)
	}
	n, url := nodetest.Start(t, node.Config{Name: "alpha-val-1", Genesis: gen, Key: val, Validator: true,
		Registry: xchainRegistry(), Models: app.Models()})
	m := &testnet.Manifest{Dir: dir, Chains: []testnet.Chain{{ChainID: "alpha", Nodes: []testnet.Node{{Name: "alpha-val-1", HTTP: url, Validator: true, PID: os.Getpid()}}}}}
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}
	c, err := client.New([]string{url})
	if err != nil {
		t.Fatal(err)
	}
	nodetest.WaitHeight(t, n, 1)
	return &settleNet{dir: dir, client: c, admin: admin, alice: keys["alice"].Public().Address()}
}

// relay stands in for `plug relay start` on a one-chain network: for every trade
// recorded in the store it submits decide, then finish of each leg, until ctx ends.
func (s *settleNet) relay(ctx context.Context, t *testing.T) {
	submit := func(tr transform.Transform) {
		n, err := s.client.Nonce(ctx, s.admin.Public().Address())
		if err != nil {
			return
		}
		x, err := tx.New(xchainRegistry(), "alpha", tr, tx.Signer{Key: s.admin.Public(), Nonce: n})
		if err != nil {
			t.Error(err)
			return
		}
		if err := x.Sign(s.admin); err != nil {
			t.Error(err)
			return
		}
		s.client.Submit(ctx, x, true, 10*time.Second)
	}
	for ctx.Err() == nil {
		files, _ := filepath.Glob(filepath.Join(s.dir, "settlements", "*.json"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			var r record
			if json.Unmarshal(b, &r) != nil {
				continue
			}
			st, err := settlement.Query(ctx, &r.XTx, map[string]settlement.Reader{"alpha": s.client}, false)
			if err != nil || st.Final {
				continue
			}
			if !st.Decided {
				submit(&crosschain.Decide{XTx: r.XTx})
				continue
			}
			for i, l := range st.Legs {
				if l.Status != string(crosschain.Committed) && l.Status != string(crosschain.Aborted) {
					submit(&crosschain.Finish{XTx: r.XTx, Leg: uint32(i)})
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func runPlug(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(append([]string{"plug"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestSettleDvP(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a chain")
	}
	s := startSettleNet(t)

	// Without a relay, --wait gives up and says what to run.
	code, out, errs := runPlug("settle", "dvp", "--testnet", s.dir, "--seller", "alice", "--buyer", "bob",
		"--delivery", "alpha:EUR:1", "--payment", "alpha:USD:1", "--wait", "--timeout", "1s", "--output", "json")
	if code == 0 || !strings.Contains(errs, "plug relay start") {
		t.Fatalf("no relay: exit %d\n%s\n%s", code, out, errs)
	}
	var pending settleOut
	if err := json.Unmarshal([]byte(out), &pending); err != nil || pending.Final || len(pending.Legs) != 2 {
		t.Fatalf("no relay: %v\n%s", err, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.relay(ctx, t); close(done) }()
	defer func() { cancel(); <-done }()

	code, out, errs = runPlug("settle", "dvp", "--testnet", s.dir, "--seller", "alice", "--buyer", "bob",
		"--delivery", "alpha:EUR:100", "--payment", "alpha:USD:110", "--wait", "--timeout", "30s", "--output", "json")
	if code != 0 {
		t.Fatalf("dvp: exit %d\n%s\n%s", code, out, errs)
	}
	var got settleOut
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.State != settlement.Committed || !got.Final || got.Legs[0].Status != "committed" || got.Legs[1].Status != "committed" {
		t.Fatalf("dvp: %s", out)
	}
	bal := func(a string) uint64 {
		v, err := s.client.Balance(context.Background(), a, s.alice)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// alice: -1 EUR, +1 USD from the first trade once the relay finished it, then -100 EUR +110 USD.
	deadlineFirst := time.Now().Add(20 * time.Second)
	for bal("USD") != 1111 && time.Now().Before(deadlineFirst) {
		time.Sleep(100 * time.Millisecond)
	}
	if e, u := bal("EUR"), bal("USD"); e != 899 || u != 1111 {
		t.Fatalf("alice holds %d EUR, %d USD; want 899, 1111", e, u)
	}

	// The same trade under the same reference, run again: reported, never a
	// second trade (the delivery moves once); other terms under it are refused.
	var ids []string
	for range 2 {
		code, out, errs = runPlug("settle", "dvp", "--testnet", s.dir, "--seller", "alice", "--buyer", "bob",
			"--delivery", "alpha:EUR:7", "--payment", "alpha:USD:8", "--ref", "T-7", "--wait", "--timeout", "30s", "--output", "json")
		var r settleOut
		if code != 0 || json.Unmarshal([]byte(out), &r) != nil || r.State != settlement.Committed || r.Ref != "T-7" {
			t.Fatalf("dvp T-7: exit %d\n%s\n%s", code, out, errs)
		}
		ids = append(ids, r.ID)
		if len(ids) == 2 && (!r.Existing || !strings.Contains(errs, "already on the chains")) {
			t.Fatalf("second run of T-7 not reported as the existing trade: %s\n%s", out, errs)
		}
	}
	if ids[0] != ids[1] {
		t.Fatalf("T-7 run twice gave trades %s and %s", ids[0], ids[1])
	}
	if e, u := bal("EUR"), bal("USD"); e != 892 || u != 1119 {
		t.Fatalf("after T-7 twice alice holds %d EUR, %d USD; want 892, 1119 (once)", e, u)
	}
	code, out, errs = runPlug("settle", "dvp", "--testnet", s.dir, "--seller", "alice", "--buyer", "bob",
		"--delivery", "alpha:EUR:70", "--payment", "alpha:USD:8", "--ref", "T-7", "--wait", "--timeout", "30s")
	if code == 0 || !strings.Contains(errs, `reference "T-7"`) || !strings.Contains(errs, "already used by trade "+ids[0]) {
		t.Fatalf("T-7 with other terms: exit %d\n%s\n%s", code, out, errs)
	}
	code, _, errs = runPlug("settle", "dvp", "--testnet", s.dir, "--seller", "alice", "--buyer", "bob",
		"--delivery", "alpha:XYZ:1", "--payment", "alpha:USD:1")
	if code == 0 || !strings.Contains(errs, `unknown asset "XYZ" on chain alpha`) {
		t.Fatalf("unknown asset: exit %d %s", code, errs)
	}

	// status, with proofs, by both commands.
	for _, group := range []string{"settle", "xchain"} {
		code, out, errs = runPlug(group, "status", got.ID, "--testnet", s.dir, "--prove", "--output", "json")
		var st settleOut
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.State != settlement.Committed || !st.Legs[0].Verified {
			t.Fatalf("%s status: exit %d\n%s\n%s", group, code, out, errs)
		}
	}
	code, out, _ = runPlug("settle", "status", got.ID, "--testnet", s.dir)
	if code != 0 || !strings.Contains(out, "committed") || !strings.Contains(out, "LEG") {
		t.Fatalf("status text: %s", out)
	}

	// Insufficient funds: the payment leg is refused, the trade aborts and the
	// delivery leg is refunded.
	code, out, errs = runPlug("settle", "dvp", "--testnet", s.dir, "--seller", "alice", "--buyer", "bob",
		"--delivery", "alpha:EUR:50", "--payment", "alpha:USD:5000", "--wait", "--timeout", "30s", "--output", "json")
	var ab settleOut
	if code == 0 || json.Unmarshal([]byte(out), &ab) != nil || ab.State != settlement.Aborted || !ab.Final ||
		!strings.Contains(ab.Reason, "insufficient") || ab.Legs[0].Status != "aborted" || ab.Legs[1].Status != "aborted" {
		t.Fatalf("abort: exit %d\n%s\n%s", code, out, errs)
	}
	if e := bal("EUR"); e != 892 {
		t.Fatalf("alice holds %d EUR after the abort, want 892 (refunded)", e)
	}

	// A batch settles as its net transfers: alice pays bob 70 USD and 5 EUR.
	code, out, errs = runPlug("settle", "batch", "--testnet", s.dir, "--trade", "alice:bob:alpha:USD:100",
		"--trade", "bob:alice:alpha:USD:30", "--trade", "alice:bob:alpha:EUR:5", "--wait", "--timeout", "30s", "--output", "json")
	var bt settleOut
	if code != 0 || json.Unmarshal([]byte(out), &bt) != nil || bt.State != settlement.Committed || len(bt.Legs) != 2 || bt.Kind != settlement.BatchKind {
		t.Fatalf("batch: exit %d\n%s\n%s", code, out, errs)
	}
	if e, u := bal("EUR"), bal("USD"); e != 887 || u != 1049 {
		t.Fatalf("after the batch alice holds %d EUR, %d USD; want 887, 1049", e, u)
	}

	// PvP: alice pays 3 USD against 2 EUR from bob.
	code, out, errs = runPlug("settle", "pvp", "--testnet", s.dir, "--party1", "alice", "--party2", "bob",
		"--leg1", "alpha:USD:3", "--leg2", "alpha:EUR:2", "--wait", "--timeout", "30s")
	if code != 0 || !strings.Contains(out, "committed") {
		t.Fatalf("pvp: exit %d\n%s\n%s", code, out, errs)
	}
	if e, u := bal("EUR"), bal("USD"); e != 889 || u != 1046 {
		t.Fatalf("after the pvp alice holds %d EUR, %d USD; want 889, 1046", e, u)
	}

	// Each party signs its own instruction; match pairs them and submits the trade.
	at := time.Now().Add(30 * time.Second).UTC().Format(time.RFC3339)
	files := map[string]string{"alice": filepath.Join(s.dir, "alice.json"), "bob": filepath.Join(s.dir, "bob.json")}
	for _, who := range []string{"alice", "bob"} {
		code, out, errs = runPlug("settle", "instruct", "--testnet", s.dir, "--as", who, "--seller", "alice", "--buyer", "bob",
			"--delivery", "alpha:EUR:10", "--payment", "alpha:USD:11", "--deadline-at", at, "--ref", "T-42", "--out", files[who])
		if code != 0 {
			t.Fatalf("instruct %s: exit %d\n%s\n%s", who, code, out, errs)
		}
	}
	code, out, errs = runPlug("settle", "match", files["bob"], files["alice"], "--testnet", s.dir, "--from", "bob",
		"--wait", "--timeout", "30s", "--output", "json")
	var mt settleOut
	if code != 0 || json.Unmarshal([]byte(out), &mt) != nil || mt.State != settlement.Committed {
		t.Fatalf("match: exit %d\n%s\n%s", code, out, errs)
	}
	if e, u := bal("EUR"), bal("USD"); e != 879 || u != 1057 {
		t.Fatalf("after the match alice holds %d EUR, %d USD; want 879, 1057", e, u)
	}

	// Errors say what to do.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"settle", "dvp", "--testnet", s.dir, "--seller", "alice", "--buyer", "bob", "--delivery", "alpha:EUR", "--payment", "alpha:USD:1"}, "CHAIN:ASSET:AMOUNT"},
		{[]string{"settle", "dvp", "--testnet", s.dir, "--seller", "alice", "--buyer", "carol", "--delivery", "alpha:EUR:1", "--payment", "alpha:USD:1"}, "--buyer carol"},
		{[]string{"settle", "dvp", "--testnet", s.dir, "--seller", "alice", "--buyer", "bob", "--delivery", "gamma:EUR:1", "--payment", "alpha:USD:1"}, `chain "gamma"`},
		{[]string{"settle", "status", strings.Repeat("ab", 32), "--testnet", s.dir}, "on none of the chains"},
		{[]string{"settle", "dvp", "--seller", "alice"}, "--testnet"},
		{[]string{"settle", "match", files["alice"], files["alice"], "--testnet", s.dir, "--from", "bob"}, "both instructions"},
		{[]string{"settle", "batch", "--testnet", s.dir, "--trade", "alice:bob:alpha:USD:5", "--trade", "bob:alice:alpha:USD:5"}, "nothing to settle"},
	} {
		code, _, errs := runPlug(c.args...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%q: exit %d, stderr %q (want %q)", c.args, code, errs, c.want)
		}
	}
}
