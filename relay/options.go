package relay

import "time"

// Clock is the relay's only source of time: when steps were sent, how long a
// nonce has been stuck, when a light client last moved. The daemon uses the
// wall clock; the crosschain simulation steps one of its own.
type Clock interface {
	Now() time.Time
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// Option configures New.
type Option func(*options)

type options struct {
	clock  Clock
	chains map[string]Chain
}

// WithClock makes the relay read time from c instead of the wall clock.
func WithClock(c Clock) Option { return func(o *options) { o.clock = c } }

// WithChains gives the relay its chains (by chain ID) instead of HTTP clients
// of the configured endpoints. Every configured chain must have one.
func WithChains(chains map[string]Chain) Option { return func(o *options) { o.chains = chains } }
