package testnet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadTopology(t *testing.T) {
	toml := writeFile(t, "net.toml", `
base_port = 30000
[[chains]]
validators = 4
[[chains]]
id = "settle"
validators = 3
full_nodes = 1
`)
	js := writeFile(t, "net.json", `{"base_port": 30000, "chains": [{"validators": 4}, {"id": "settle", "validators": 3, "full_nodes": 1}]}`)
	for _, p := range []string{toml, js} {
		topo, err := LoadTopology(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if topo.BasePort != 30000 || len(topo.Chains) != 2 ||
			topo.Chains[0] != (ChainSpec{ID: "alpha", Validators: 4}) ||
			topo.Chains[1] != (ChainSpec{ID: "settle", Validators: 3, FullNodes: 1}) {
			t.Errorf("%s: got %+v", p, topo)
		}
	}
}

func TestLoadTopologyErrors(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"a.toml", "[[chains]]\nvalidators = 4\nvalidator = 3\n", "unknown field"},
		{"a.json", `{"chains": [{"validators": 4, "nodes": 3}]}`, "unknown field"},
		{"a.toml", "", "no chains"},
		{"a.toml", "[[chains]]\nvalidators = 0\n", "0 validators"},
		{"a.toml", "[[chains]]\nid = \"Alpha\"\nvalidators = 1\n", "bad id"},
		{"a.toml", "[[chains]]\nid = \"x\"\nvalidators = 1\n[[chains]]\nid = \"x\"\nvalidators = 1\n", "twice"},
		{"a.toml", "base_port = 80\n[[chains]]\nvalidators = 1\n", "base_port"},
		{"a.toml", "[[chains]\n", "topology"},
		{"a.toml", "[[chains]]\nvalidators = 1\n[[relays]]\n", "at least two"},
		{"a.toml", "[[chains]]\nvalidators = 1\n[[chains]]\nvalidators = 1\n[[relays]]\nchains = [\"alpha\", \"gamma\"]\n", "no chain \"gamma\""},
		{"a.toml", "[[chains]]\nvalidators = 1\n[[chains]]\nvalidators = 1\n[[relays]]\nname = \"r\"\n[[relays]]\nname = \"r\"\n", "taken"},
		{"a.toml", "[[chains]]\nvalidators = 1\n[[chains]]\nvalidators = 1\n[[relays]]\nport = 3\n", "unknown field"},
	} {
		_, err := LoadTopology(writeFile(t, tc.name, tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error with %q", tc.body, err, tc.want)
		}
	}
}

func TestDefaultTopology(t *testing.T) {
	topo := DefaultTopology(2, 4)
	if err := topo.Normalize(); err != nil {
		t.Fatal(err)
	}
	if topo.Chains[0].ID != "alpha" || topo.Chains[1].ID != "beta" || topo.Chains[1].Validators != 4 {
		t.Errorf("got %+v", topo)
	}
	if len(topo.Relays) != 1 || topo.Relays[0].Name != "relay-1" || strings.Join(topo.Relays[0].Chains, ",") != "alpha,beta" {
		t.Errorf("relays: got %+v, want relay-1 between alpha and beta", topo.Relays)
	}
	if one := DefaultTopology(1, 4); len(one.Relays) != 0 {
		t.Errorf("one chain gets relays %+v", one.Relays)
	}
	if got := nodeName("beta", true, 2); got != "beta-full-2" {
		t.Errorf("nodeName = %s", got)
	}
}

func TestAliveChecksCommandLine(t *testing.T) {
	self := os.Getpid()
	if !alive(self, os.Args[0]) {
		t.Error("this process is not alive for its own command line")
	}
	if alive(self, "/no/such/testnet/home") {
		t.Error("a PID running another command line counts as the node")
	}
	if alive(0, "x") || alive(-1, "x") {
		t.Error("PID 0 or -1 counts as alive")
	}
}

func TestPickPorts(t *testing.T) {
	ports, err := pickPorts(0, 6)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p == 0 || seen[p] {
			t.Fatalf("ports %v: zero or repeated", ports)
		}
		seen[p] = true
	}
}
