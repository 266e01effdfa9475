package node

import (
	"fmt"

	logging "github.com/ipfs/go-log/v2"

	"github.com/plugchain/plug/chain/p2p"
)

// quietSubsystems are libp2p subsystems logged at a higher level than the
// node's unless [log.subsystems] names them or the level is debug.
// net/identify logs one or two lines for every connection the remote peer
// closes at once, which is how a validator refuses a node outside its allow
// list: a node waiting to be given power would log them on every retry.
var quietSubsystems = map[string]logging.LogLevel{"net/identify": logging.LevelError}

// SetupLogging applies the home's log settings to go-log, and through it to
// go-libp2p and gossipsub (p2p.RouteLibp2pLogs), so the [log] section governs
// every log line of the node; override, if not empty, replaces the default
// level (e.g. from --log-level). Call it before the node starts: libp2p's
// loggers pick their handler at their first line.
func (h *Home) SetupLogging(override string) error {
	lvl := h.LogLevel
	if override != "" {
		lvl = override
	}
	l, err := logging.Parse(lvl)
	if err != nil {
		return fmt.Errorf("log level %q: use debug, info, warn or error", lvl)
	}
	cfg := logging.GetConfig()
	cfg.Level = l
	cfg.Stderr, cfg.Stdout = true, false
	switch h.LogFormat {
	case "plain":
		cfg.Format = logging.PlaintextOutput
	case "json":
		cfg.Format = logging.JSONOutput
	default:
		cfg.Format = logging.ColorizedOutput
	}
	cfg.SubsystemLevels = map[string]logging.LogLevel{}
	for sub, s := range h.LogLevels {
		v, err := logging.Parse(s)
		if err != nil {
			return fmt.Errorf("log level %q of %s: use debug, info, warn or error", s, sub)
		}
		cfg.SubsystemLevels[sub] = v
	}
	for sub, v := range quietSubsystems {
		if _, set := cfg.SubsystemLevels[sub]; !set && l > logging.LevelDebug {
			cfg.SubsystemLevels[sub] = v
		}
	}
	logging.SetupLogging(cfg)
	p2p.RouteLibp2pLogs()
	logging.SetAllLoggers(l)
	for sub, v := range cfg.SubsystemLevels {
		_ = logging.SetLogLevel(sub, v.String())
	}
	return nil
}
