package node

import (
	"fmt"

	logging "github.com/ipfs/go-log/v2"
)

// SetupLogging applies the home's log settings to go-log; override, if not
// empty, replaces the default level (e.g. from --log-level).
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
	logging.SetupLogging(cfg)
	logging.SetAllLoggers(l)
	for sub, v := range cfg.SubsystemLevels {
		_ = logging.SetLogLevel(sub, v.String())
	}
	return nil
}
