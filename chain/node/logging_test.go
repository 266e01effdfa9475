package node

import (
	"context"
	"log/slog"
	"testing"

	"github.com/libp2p/go-libp2p/gologshim"
)

// TestSetupLoggingRoutesLibp2p checks that the [log] section governs libp2p's
// slog loggers too: a level set for one of their subsystems applies.
func TestSetupLoggingRoutesLibp2p(t *testing.T) {
	h := &Home{LogLevel: "error", LogFormat: "plain", LogLevels: map[string]string{"plug-test-libp2p": "debug"}}
	if err := h.SetupLogging(""); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if !gologshim.Logger("plug-test-libp2p").Enabled(ctx, slog.LevelDebug) {
		t.Error("a libp2p subsystem set to debug in [log.subsystems] does not log at debug")
	}
	if gologshim.Logger("plug-test-libp2p-quiet").Enabled(ctx, slog.LevelWarn) {
		t.Error("a libp2p subsystem logs warnings at the default level error")
	}
}
