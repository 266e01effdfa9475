package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plugchain/plug/chain/builtin"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/genesis"
)

func writeTestHome(t *testing.T) (string, crypto.PrivateKey) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "home")
	key := seedKey(t, 7)
	gen := genesis.Default("cfgtest", []crypto.PublicKey{key.Public()}, seedKey(t, 8).Public().Address())
	f := DefaultFileConfig("val-1", "cfgtest", true)
	f.P2P.Peers = []string{"/ip4/10.0.0.2/tcp/26656/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"}
	f.Log.Subsystems = map[string]string{"plug/node": "debug", "plug/p2p": "warn"}
	if err := WriteHome(dir, f, gen, key); err != nil {
		t.Fatal(err)
	}
	return dir, key
}

func TestHomeRoundTrip(t *testing.T) {
	dir, key := writeTestHome(t)
	h, err := LoadHome(dir, builtin.Registry(), builtin.Models())
	if err != nil {
		t.Fatal(err)
	}
	if h.Config.ChainID != "cfgtest" || !h.Config.Validator || h.Config.Name != "val-1" || h.Config.Home != dir {
		t.Fatalf("config %+v", h.Config)
	}
	if !h.Config.Key.Public().Equal(key.Public()) {
		t.Fatal("node key changed on the round trip")
	}
	if h.HTTPListen != DefaultHTTPListen || h.LogLevels["plug/node"] != "debug" || len(h.Config.Peers) != 1 {
		t.Fatalf("home %+v", h)
	}
	if h.Config.StateCacheNodes != 0 {
		t.Fatalf("state cache %d, want 0 (the default)", h.Config.StateCacheNodes)
	}
	if d := consensus.DefaultTimeouts(); h.Config.Timeouts != d {
		t.Fatalf("timeouts %+v, want the defaults %+v", h.Config.Timeouts, d)
	}
	if st, _ := os.Stat(filepath.Join(dir, NodeKeyFile)); st.Mode().Perm() != 0o600 {
		t.Fatalf("node key mode %v", st.Mode())
	}
	if len(h.Warnings) != 0 {
		t.Fatalf("warnings %v", h.Warnings)
	}
	if got := HomeExists(dir); len(got) != 2 {
		t.Fatalf("HomeExists %v", got)
	}
	// A loose key file is a warning, not an error.
	os.Chmod(filepath.Join(dir, NodeKeyFile), 0o644)
	if h, err = LoadHome(dir, builtin.Registry(), builtin.Models()); err != nil || len(h.Warnings) != 1 || !strings.Contains(h.Warnings[0], "chmod 600") {
		t.Fatalf("loose key: %v %v", h.Warnings, err)
	}
}

func TestHomeErrors(t *testing.T) {
	edit := func(t *testing.T, file, old, new string) string {
		dir, _ := writeTestHome(t)
		p := filepath.Join(dir, file)
		b, _ := os.ReadFile(p)
		if !strings.Contains(string(b), old) {
			t.Fatalf("%s has no %q", file, old)
		}
		os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o600)
		return dir
	}
	cases := []struct {
		name, file, old, new string
		want                 []string
	}{
		{"unknown field", ConfigFile, "[http]\n", "[http]\nlisen = 1\n", []string{ConfigFile, "http.lisen", "unknown field"}},
		{"syntax", ConfigFile, "validator = true", "validator = tru", []string{ConfigFile + ":", "docs/operator.md"}},
		{"bad duration", ConfigFile, `propose = "300ms"`, `propose = "soon"`, []string{ConfigFile, "duration"}},
		{"bad peer", ConfigFile, "/p2p/12D3KooW", "/p2p/nope", []string{"p2p.peers[0]", "plug node id"}},
		{"bad http", ConfigFile, `listen = "127.0.0.1:26657"`, `listen = "localhost"`, []string{"http.listen", "host:port"}},
		{"bad level", ConfigFile, `level = "info"`, `level = "loud"`, []string{"log.level", "debug, info"}},
		{"chain mismatch", ConfigFile, `chain_id = "cfgtest"`, `chain_id = "other"`, []string{"chain_id", GenesisFile, "cfgtest"}},
		{"genesis", GenesisFile, `"power": 100`, `"power": "x"`, []string{GenesisFile + ":", "plug genesis validate"}},
		{"long heartbeat", ConfigFile, `heartbeat = "1s"`, `heartbeat = "2m"`, []string{"consensus.heartbeat", "1m0s"}},
		{"negative cache", ConfigFile, "state_cache_nodes = 0", "state_cache_nodes = -5", []string{"storage.state_cache_nodes", "negative"}},
		{"small body budget", ConfigFile, "body_budget_bytes = 67108864", "body_budget_bytes = 1000", []string{"http.body_budget_bytes", "largest batch body"}},
		{"negative body", ConfigFile, "max_body_bytes = 1048576", "max_body_bytes = -1", []string{"http.max_body_bytes", "negative"}},
		{"key altered", NodeKeyFile, `"seed": "`, `"seed": "00`, []string{NodeKeyFile, "seed"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := edit(t, c.file, c.old, c.new)
			_, err := LoadHome(dir, builtin.Registry(), builtin.Models())
			if err == nil || !errors.Is(err, ErrConfig) {
				t.Fatalf("err %v", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	t.Run("missing files", func(t *testing.T) {
		dir, _ := writeTestHome(t)
		os.Remove(filepath.Join(dir, GenesisFile))
		if _, err := LoadHome(dir, builtin.Registry(), builtin.Models()); err == nil || !strings.Contains(err.Error(), "copy the chain's genesis.json") {
			t.Fatalf("no genesis: %v", err)
		}
		os.Remove(filepath.Join(dir, ConfigFile))
		if _, err := LoadHome(dir, builtin.Registry(), builtin.Models()); err == nil || !strings.Contains(err.Error(), "plug init") {
			t.Fatalf("no config: %v", err)
		}
	})
}
