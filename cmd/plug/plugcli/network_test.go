package plugcli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/plugchain/plug/crosschain/shard"
)

// TestNetworkCommands drives `plug network` on a file (no nodes needed) and the
// --network errors that must say what to do.
func TestNetworkCommands(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "net.toml")
	src := "name = \"n\"\nassets = [\"USD\"]\n\n[[shards]]\nchain_id = \"s0\"\nendpoints = [\"http://127.0.0.1:1\"]\n\n" +
		"[[shards]]\nchain_id = \"s1\"\nendpoints = [\"http://127.0.0.1:2\"]\n"
	if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var n shard.Network
	ok(t, &n, nil, "network", "show", "--network", f, "--output", "json")
	if len(n.Shards) != 2 || n.Generation() != 0 {
		t.Fatalf("show: %+v", n)
	}
	ok(t, &n, nil, "network", "add-shard", "--network", f, "--chain", "s2", "--node", "http://127.0.0.1:3", "--output", "json")
	if len(n.Shards) != 3 || n.Shards[2].Generation != 1 {
		t.Fatalf("add-shard: %+v", n)
	}
	saved, err := shard.Load(f)
	if err != nil || len(saved.Shards) != 3 {
		t.Fatalf("saved file: %+v %v", saved, err)
	}
	fails(t, "already in the network", nil, "network", "add-shard", "--network", f, "--chain", "s2", "--node", "http://127.0.0.1:3")
	fails(t, "add --chain with one of the network's shards", nil, "query", "state", "--network", f, "rbac/roles")
	fails(t, "not several", nil, "query", "balance", "--network", f, "--testnet", dir, "--account", "alice", "--asset", "USD")
	fails(t, "give --network FILE", nil, "query", "supply", "--node", "http://127.0.0.1:1", "--asset", "USD")
	if err := os.WriteFile(f, []byte(src+"\nplacement = 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fails(t, "bad network file", nil, "network", "show", "--network", f, "--output", "json")
}
