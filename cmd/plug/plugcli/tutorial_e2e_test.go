package plugcli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTutorialE2E runs the core of docs/tutorial.md for real: a plug built with
// the example transform (-tags example) starts a testnet, a role is set up for
// oracle/publish, carol publishes through `plug tx submit`, a price that moves
// too far is refused, and the stored price is read back with a verified proof.
func TestTutorialE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a second plug and starts a testnet; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "plug-example")
	build := exec.Command("go", "build", "-tags", "example", "-o", bin, "github.com/plugchain/plug/cmd/plug")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags example: %v\n%s", err, out)
	}
	run := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		out, err := cmd.Output()
		return string(out), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("plug-example %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	dir := filepath.Join(t.TempDir(), "tut")
	must("testnet", "up", "--dir", dir, "--validators", "1", "--detach", "--output", "json")
	t.Cleanup(func() { run("testnet", "down", "--dir", dir) })
	if out := must("tx", "submit", "--list"); !strings.Contains(out, "oracle/publish") {
		t.Fatalf("the example binary does not know oracle/publish:\n%s", out)
	}
	must("tx", "set-role", "--testnet", dir, "--from", "admin", "--role", "oracle", "--transforms", "oracle/publish", "--wait")
	must("tx", "grant", "--testnet", dir, "--from", "admin", "--role", "oracle", "--member", "carol", "--wait")
	var res struct{ Status string }
	out := must("tx", "submit", "--testnet", dir, "--from", "carol", "--type", "oracle/publish",
		"--payload", `{"pair":"EURUSD","price":10850}`, "--wait", "--output", "json")
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Status != "ok" {
		t.Fatalf("publish: %v %s", err, out)
	}
	if out, err := run("tx", "submit", "--testnet", dir, "--from", "carol", "--type", "oracle/publish",
		"--payload", `{"pair":"EURUSD","price":30000}`, "--wait", "--output", "json"); err == nil || !strings.Contains(out, "moves more than") {
		t.Fatalf("a 176%% jump was not refused: %v %s", err, out)
	}
	var st struct {
		Found    bool           `json:"found"`
		Verified bool           `json:"verified"`
		Value    map[string]any `json:"value"`
	}
	out = must("query", "state", "price/EURUSD", "--testnet", dir, "--prove", "--output", "json")
	if err := json.Unmarshal([]byte(out), &st); err != nil || !st.Found || !st.Verified || st.Value["price"] != float64(10850) {
		t.Fatalf("proven read of price/EURUSD: %v %s", err, out)
	}
}
