package plugcli

import (
	"slices"
	"testing"
)

// TestTxSubmitErrors: `plug tx submit` lists the known types and refuses an
// unknown type or a payload that does not fit it before anything is sent.
func TestTxSubmitErrors(t *testing.T) {
	var names []string
	ok(t, &names, nil, "tx", "submit", "--list", "--output", "json")
	if !slices.Contains(names, "asset/transfer") || !slices.Contains(names, "xchain/prepare") {
		t.Fatalf("--list: %v", names)
	}
	kr := []string{"--keyring-dir", t.TempDir(), "--keyring-backend", "test"}
	ok(t, nil, nil, append([]string{"keys", "add", "alice"}, kr...)...)
	base := append([]string{"tx", "submit", "--node", "http://127.0.0.1:1", "--from", "alice"}, kr...)
	fails(t, "unknown transform type", nil, append(base, "--type", "asset/teleport", "--payload", "{}")...)
	fails(t, `unknown field "amunt"`, nil, append(base, "--type", "asset/transfer", "--payload", `{"asset":"USD","amunt":5}`)...)
	fails(t, "missing --payload", nil, append(base, "--type", "asset/transfer")...)
}
