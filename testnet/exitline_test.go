package testnet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A node that stopped at start is reported by its error line first (it names a
// damaged database and the repair), not only by the end of its log.
func TestStoppedErrorLeadsWithTheExitLine(t *testing.T) {
	home := t.TempDir()
	log := "--- 2026-12-04T10:00:00Z: plug testnet starts v1\n" +
		"plug: old failure of an earlier start\n" +
		"--- 2026-12-04T11:00:00Z: plug testnet starts v1\n" +
		"plug: warning: something minor\n" +
		"plug: /h/v1/state.db is truncated (40000 bytes, ...): restore state.db from a backup, or run `plug node resync --home /h/v1` ...\n"
	os.WriteFile(filepath.Join(home, LogFile), []byte(log), 0o600)
	err := stoppedError("v1", home)
	first, _, _ := strings.Cut(err.Error(), "\n")
	if !strings.HasPrefix(first, "node v1 stopped: /h/v1/state.db is truncated") || !strings.Contains(first, "plug node resync") {
		t.Fatalf("first line %q", first)
	}

	// No error line since the last start (a crash): the tail alone.
	os.WriteFile(filepath.Join(home, LogFile), []byte(log+"--- 2026-12-04T12:00:00Z: plug testnet starts v1\nfatal error: fault\n"), 0o600)
	if msg := stoppedError("v1", home).Error(); !strings.HasPrefix(msg, "node v1 stopped; the end of its log") || strings.Contains(msg, "stopped: ") {
		t.Fatalf("%q", msg)
	}
}
