package relay

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "relay.toml")
	body := `name = "r1"
poll_interval = "100ms"
[key]
name = "relayer"
dir = "keys"
[[chains]]
id = "alpha"
endpoints = ["127.0.0.1:1"]
[[chains]]
id = "beta"
endpoints = ["127.0.0.1:2"]
[[chains]]
id = "gamma"
endpoints = ["127.0.0.1:3"]
`
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Paths) != 6 || c.DB != filepath.Join(dir, DefaultDB) || c.Key.Dir != filepath.Join(dir, "keys") || c.PollInterval.Milliseconds() != 100 {
		t.Fatalf("config %+v", c)
	}
	if err := os.WriteFile(p, []byte(body+"bogus = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(p); err == nil {
		t.Fatal("unknown field accepted")
	}
}
