package relay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/plugchain/plug/chain/config"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/crosschain"
)

// Defaults of a Config.
const (
	DefaultPollInterval = 200 * time.Millisecond
	DefaultRetryAfter   = 3 * time.Second
	DefaultMaxInflight  = 1000
	DefaultWorkers      = 16
	DefaultBatchSteps   = 64
	// DefaultClientRefresh is how often an idle path's light client is
	// updated. Each update is a transaction, so a block, on the client's chain:
	// refreshing idle clients often would keep idle chains committing blocks
	// beyond their heartbeat. A trade brings its clients up to date at once.
	DefaultClientRefresh = 30 * time.Second
	DefaultDB            = "relay.db"
)

// Duration is a time.Duration written as "200ms" in TOML: the node's
// config.toml type, so both files read durations alike.
type Duration = config.Duration

// KeyConfig names the relayer's signing key in a keyring.
type KeyConfig struct {
	// Name is the key's name in the keyring.
	Name string `toml:"name"`
	// Dir is the keyring directory.
	Dir string `toml:"dir"`
	// Backend is "file" (passphrase from PassphraseFile or $PLUG_PASSPHRASE) or "test".
	Backend        string `toml:"backend"`
	PassphraseFile string `toml:"passphrase_file"`
}

// ChainConfig is one chain the relay follows.
type ChainConfig struct {
	ID string `toml:"id"`
	// Endpoints are gateway URLs of the chain's nodes, tried in order.
	Endpoints []string `toml:"endpoints"`
}

// PathConfig says that Dest keeps a light client of Source: the relay keeps it
// current and carries Source's records to Dest.
type PathConfig struct {
	Source string `toml:"source"`
	Dest   string `toml:"dest"`
}

// Config is the relay's configuration, read from relay.toml.
type Config struct {
	// Name labels the relay in logs and status.
	Name string    `toml:"name"`
	Key  KeyConfig `toml:"key"`
	// DB is the bbolt file holding the relay's progress (relative to the config file).
	DB string `toml:"db"`
	// MetricsListen is host:port for /metrics and /status; empty disables them.
	MetricsListen string `toml:"metrics_listen"`
	// PollInterval is how often the chains are polled.
	PollInterval Duration `toml:"poll_interval"`
	// RetryAfter is how long a submitted step is given before it is sent again.
	RetryAfter Duration `toml:"retry_after"`
	// ClientRefresh is how often the relay updates a light client that no
	// unfinished XTx needs (one that does is updated at every block of its
	// source). A stale idle client costs nothing: the first trade over the path
	// brings it up to date in the same submission as its proof.
	ClientRefresh Duration `toml:"client_refresh"`
	// MaxInflight bounds the relay's uncommitted transactions per chain.
	MaxInflight int `toml:"max_inflight"`
	// Workers is how many crosschain transactions are advanced at once (their
	// reads and proofs run in parallel; submissions to one chain stay in nonce order).
	Workers int `toml:"workers"`
	// BatchSteps is the most crosschain steps (prepares, decides, finishes)
	// sent to a chain in one xchain/batch transaction; 1 sends each step in a
	// transaction of its own, for chains whose relayer role does not list
	// xchain/batch.
	BatchSteps int           `toml:"batch_steps"`
	Chains     []ChainConfig `toml:"chains"`
	// Paths default to every ordered pair of chains.
	Paths []PathConfig `toml:"paths"`

	// Signer, when set, is used instead of Key (tests, embedding).
	Signer crypto.PrivateKey `toml:"-"`
}

// LoadConfig reads a TOML config file; relative paths in it are taken relative
// to the file's directory.
func LoadConfig(path string) (*Config, error) {
	var c Config
	md, err := toml.DecodeFile(path, &c)
	if err != nil {
		return nil, fmt.Errorf("relay config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("relay config %s: unknown field %q", path, und[0].String())
	}
	base := filepath.Dir(path)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	if c.DB == "" {
		c.DB = DefaultDB
	}
	c.DB = abs(c.DB)
	c.Key.Dir = abs(c.Key.Dir)
	c.Key.PassphraseFile = abs(c.Key.PassphraseFile)
	if err := c.Check(); err != nil {
		return nil, fmt.Errorf("relay config %s: %w", path, err)
	}
	return &c, nil
}

// Check fills defaults and validates the config.
func (c *Config) Check() error {
	if c.Name == "" {
		c.Name = "relay"
	}
	if c.PollInterval.Duration <= 0 {
		c.PollInterval.Duration = DefaultPollInterval
	}
	if c.RetryAfter.Duration <= 0 {
		c.RetryAfter.Duration = DefaultRetryAfter
	}
	if c.ClientRefresh.Duration <= 0 {
		c.ClientRefresh.Duration = DefaultClientRefresh
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.BatchSteps <= 0 {
		c.BatchSteps = DefaultBatchSteps
	}
	if c.BatchSteps > crosschain.MaxBatchSteps {
		return fmt.Errorf("batch_steps: %d, a chain accepts at most %d steps in a batch", c.BatchSteps, crosschain.MaxBatchSteps)
	}
	if c.DB == "" {
		return errors.New("db: a bbolt file path is required")
	}
	if len(c.Chains) < 2 {
		return fmt.Errorf("chains: %d listed, a relay needs at least 2", len(c.Chains))
	}
	ids := map[string]bool{}
	for i, ch := range c.Chains {
		if err := crosschain.CheckChainID(ch.ID); err != nil {
			return fmt.Errorf("chains[%d]: %w", i, err)
		}
		if ids[ch.ID] {
			return fmt.Errorf("chains[%d]: chain %q listed twice", i, ch.ID)
		}
		if len(ch.Endpoints) == 0 {
			return fmt.Errorf("chains[%d] (%s): no endpoints", i, ch.ID)
		}
		ids[ch.ID] = true
	}
	if len(c.Paths) == 0 {
		for _, d := range c.Chains {
			for _, s := range c.Chains {
				if s.ID != d.ID {
					c.Paths = append(c.Paths, PathConfig{Source: s.ID, Dest: d.ID})
				}
			}
		}
	}
	for i, p := range c.Paths {
		if !ids[p.Source] || !ids[p.Dest] || p.Source == p.Dest {
			return fmt.Errorf("paths[%d]: %s -> %s: both must be distinct listed chains", i, p.Source, p.Dest)
		}
	}
	if c.Signer == nil && c.Key.Name == "" {
		return errors.New("key.name: the relayer's keyring key is required")
	}
	return nil
}

// passphrase reads the keyring passphrase from the file, else $PLUG_PASSPHRASE.
func (k KeyConfig) passphrase() ([]byte, error) {
	if k.PassphraseFile != "" {
		b, err := os.ReadFile(k.PassphraseFile)
		if err != nil {
			return nil, err
		}
		for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
			b = b[:len(b)-1]
		}
		return b, nil
	}
	if p, ok := os.LookupEnv("PLUG_PASSPHRASE"); ok {
		return []byte(p), nil
	}
	return nil, errors.New("keyring passphrase: set key.passphrase_file or $PLUG_PASSPHRASE")
}
