package plugcli

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plugchain/plug/testnet"
)

// TestRecoveryFromExportE2E is the runbook of docs/operator.md ("Recovery when
// fewer than a quorum survive") with the real binary and real node processes: a
// 3-validator testnet makes transfers and stops; one validator is lost for good.
// The two survivors export the same height and compare; a genesis for a new chain
// id and a validator set of the survivors is built from one export (a tampered
// export is refused); the survivors' homes are switched to it and restarted; the
// new chain holds the balances of the exported height and commits new blocks.
func TestRecoveryFromExportE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("real-process testnet")
	}
	tn := t.TempDir()
	type nodeStatus struct {
		Name   string `json:"name"`
		Home   string `json:"home"`
		HTTP   string `json:"http"`
		Height uint64 `json:"height"`
	}
	var up struct {
		Chains []struct {
			ChainID string       `json:"chain_id"`
			Nodes   []nodeStatus `json:"nodes"`
		} `json:"chains"`
	}
	ok(t, &up, nil, "testnet", "up", "--dir", tn, "--validators", "3", "--detach", "-o", "json")
	t.Cleanup(func() { plug(t, nil, "testnet", "down", "--dir", tn) })
	nodes := up.Chains[0].Nodes
	if len(nodes) != 3 || up.Chains[0].ChainID != "alpha" {
		t.Fatalf("testnet: %+v", up)
	}

	var tx struct {
		Status string `json:"status"`
		Height uint64 `json:"height"`
	}
	for _, amt := range []string{"7", "11"} {
		ok(t, &tx, nil, "tx", "transfer", "--testnet", tn, "--from", "alice", "--to", "bob", "--asset", "USD", "--amount", amt, "--wait", "-o", "json")
		if tx.Status != "ok" {
			t.Fatalf("transfer: %+v", tx)
		}
	}
	var bob keyOut
	ok(t, &bob, nil, "keys", "show", "bob", "--keyring-dir", filepath.Join(tn, testnet.KeyringDir), "--keyring-backend", "test", "-o", "json")
	var bal struct {
		Balance uint64 `json:"balance"`
		Height  uint64 `json:"height"`
	}
	ok(t, &bal, nil, "query", "balance", "--testnet", tn, "--account", bob.Address, "--asset", "USD", "-o", "json")
	atH := bal.Balance

	// A running node's databases are not exported.
	fails(t, "is running", nil, "node", "export", "--home", nodes[0].Home, "--out", filepath.Join(t.TempDir(), "x"))

	// The chain loses its quorum: every node stops. H is a height every
	// surviving node has; the nodes only went on from what status saw.
	var st struct {
		Chains []struct {
			Nodes []nodeStatus `json:"nodes"`
		} `json:"chains"`
	}
	ok(t, &st, nil, "testnet", "status", "--dir", tn, "-o", "json")
	h := st.Chains[0].Nodes[0].Height
	for _, n := range st.Chains[0].Nodes {
		h = min(h, n.Height)
	}
	if h < tx.Height {
		t.Fatalf("common height %d below the last transfer's %d", h, tx.Height)
	}
	ok(t, nil, nil, "testnet", "down", "--dir", tn)

	// Two operators export H and compare what identifies it.
	work := t.TempDir()
	var ex [2]exportOut
	for i := range ex {
		ok(t, &ex[i], nil, "node", "export", "--home", nodes[i].Home, "--height", strconv.FormatUint(h, 10),
			"--out", filepath.Join(work, nodes[i].Name+".export"), "-o", "json")
	}
	if ex[0].Height != h || ex[0].HeaderHash != ex[1].HeaderHash || ex[0].StateRoot != ex[1].StateRoot || ex[0].ChainID != "alpha" {
		t.Fatalf("the exports of two nodes differ: %+v %+v", ex[0], ex[1])
	}

	// A tampered export is refused: a changed value, a changed root.
	orig, err := os.ReadFile(ex[0].File)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(orig), "\n")
	valueRE := regexp.MustCompile(`"value":"[^"]*"`)
	for name, tamper := range map[string]func() string{
		"value": func() string {
			l := append([]string(nil), lines...)
			l[len(l)-2] = valueRE.ReplaceAllString(l[len(l)-2], `"value":"AQID"`)
			return strings.Join(l, "\n")
		},
		"root": func() string {
			return strings.Replace(string(orig), `"state_root":"`+ex[0].StateRoot, `"state_root":"`+strings.Repeat("0", 64), 1)
		},
	} {
		bad := filepath.Join(work, "bad-"+name+".export")
		if err := os.WriteFile(bad, []byte(tamper()), 0o644); err != nil {
			t.Fatal(err)
		}
		fails(t, "refusing", nil, "genesis", "from-export", "--export", bad, "--chain-id", "alpha-2", "--out", filepath.Join(work, "bad", "genesis.json"))
	}
	fails(t, "is the exported chain's id", nil, "genesis", "from-export", "--export", ex[0].File, "--chain-id", "alpha", "--out", filepath.Join(work, "bad", "genesis.json"))

	// The new set: the survivors' node keys (the third validator is lost).
	survivors := nodes[:2]
	var lost struct {
		PeerID string `json:"peer_id"`
	}
	ok(t, &lost, nil, "node", "id", "--home", nodes[2].Home, "-o", "json")
	var set []string
	for i, n := range survivors {
		var id struct {
			PublicKey string `json:"public_key"`
			Scheme    string `json:"scheme"`
		}
		ok(t, &id, nil, "node", "id", "--home", n.Home, "-o", "json")
		set = append(set, fmt.Sprintf(`{"name": "val-%d", "pub_key": {"scheme": %q, "key": %q}, "power": 100}`, i+1, id.Scheme, id.PublicKey))
	}
	setFile := filepath.Join(work, "new-set.json")
	if err := os.WriteFile(setFile, []byte("["+strings.Join(set, ",")+"]"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Each operator builds the genesis from the agreed export, set and time,
	// and gets the same genesis hash.
	var ge, ge2 fromExportOut
	gt := "2026-12-04T12:00:00Z"
	gdir := filepath.Join(work, "new")
	ok(t, &ge, nil, "genesis", "from-export", "--export", ex[0].File, "--chain-id", "alpha-2", "--validators", setFile,
		"--genesis-time", gt, "--out", filepath.Join(gdir, "genesis.json"), "-o", "json")
	ok(t, &ge2, nil, "genesis", "from-export", "--export", ex[0].File, "--chain-id", "alpha-2", "--validators", setFile,
		"--genesis-time", gt, "--out", filepath.Join(work, "other", "genesis.json"), "-o", "json")
	if ge.OldChainID != "alpha" || ge.Height != h || ge.Validators != 2 || !ge.ValidatorsReplaced || ge.StateRoot != ex[0].StateRoot {
		t.Fatalf("from-export: %+v", ge)
	}
	if ge.GenesisHash != ge2.GenesisHash {
		t.Fatalf("two operators built different genesis hashes from the same export: %s %s", ge.GenesisHash, ge2.GenesisHash)
	}

	// Every surviving operator switches the home to the new chain: the old
	// databases are kept aside, the new genesis and the export go in, chain_id
	// changes.
	for _, n := range survivors {
		aside := filepath.Join(n.Home, "old-alpha")
		if err := os.MkdirAll(aside, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"state.db", "chain.db"} {
			if err := os.Rename(filepath.Join(n.Home, f), filepath.Join(aside, f)); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range []string{ge.File, ge.Export} {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(n.Home, filepath.Base(f)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cfg := filepath.Join(n.Home, "config.toml")
		b, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		// chain_id changes, and the lost validator leaves p2p.peers (a node
		// refuses to dial a peer outside its validator set and allow list).
		var kept []string
		for _, line := range strings.Split(strings.Replace(string(b), `chain_id = "alpha"`, `chain_id = "alpha-2"`, 1), "\n") {
			if !strings.Contains(line, lost.PeerID) {
				kept = append(kept, line)
			}
		}
		if err := os.WriteFile(cfg, []byte(strings.Join(kept, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		ok(t, &v, nil, "genesis", "validate", "--home", n.Home, "-o", "json")
		if v["genesis_hash"] != ge.GenesisHash {
			t.Fatalf("%s: genesis hash %v, want %s", n.Name, v["genesis_hash"], ge.GenesisHash)
		}
	}
	for _, n := range survivors {
		ok(t, nil, nil, "testnet", "restart", "--dir", tn, n.Name)
	}

	// The new chain commits, and holds the balances of H.
	url := nodes[0].HTTP
	var qs struct {
		ChainID string `json:"chain_id"`
		Height  uint64 `json:"height"`
	}
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if r := plug(t, nil, "query", "status", "--node", url, "-o", "json"); r.code == 0 {
			ok(t, &qs, nil, "query", "status", "--node", url, "-o", "json")
			if qs.ChainID == "alpha-2" && qs.Height >= 2 {
				break
			}
		}
		if time.Now().After(end) {
			logs, _ := filepath.Glob(filepath.Join(nodes[0].Home, "*.log"))
			var tail string
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				tail += string(b[max(0, len(b)-3000):])
			}
			t.Fatalf("the new chain did not commit: %+v\n%s", qs, tail)
		}
	}
	ok(t, &bal, nil, "query", "balance", "--node", url, "--account", bob.Address, "--asset", "USD", "--prove", "-o", "json")
	if bal.Balance != atH {
		t.Fatalf("bob has %d on the new chain, %d at height %d of the old one", bal.Balance, atH, h)
	}
	kr := []string{"--keyring-dir", filepath.Join(tn, testnet.KeyringDir), "--keyring-backend", "test"}
	ok(t, &tx, nil, append([]string{"tx", "transfer", "--node", url, "--from", "alice", "--to", "bob", "--asset", "USD", "--amount", "5", "--wait", "-o", "json"}, kr...)...)
	if tx.Status != "ok" {
		t.Fatalf("transfer on the new chain: %+v", tx)
	}
	ok(t, &bal, nil, "query", "balance", "--node", nodes[1].HTTP, "--account", bob.Address, "--asset", "USD", "-o", "json")
	if bal.Balance != atH+5 {
		t.Fatalf("bob has %d after a transfer on the new chain, want %d", bal.Balance, atH+5)
	}
}
