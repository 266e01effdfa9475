// Package config holds the value types shared by the TOML configuration files
// of PLUG programs: a node's config.toml and a relay's relay.toml.
package config

import (
	"fmt"
	"time"
)

// Duration is a time.Duration written as a string such as "300ms" in TOML.
type Duration struct{ time.Duration }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("want a duration such as \"300ms\" or \"1s\", got %q", b)
	}
	d.Duration = v
	return nil
}
