package node

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/BurntSushi/toml"
	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/plugchain/plug/chain/atomicfile"
	"github.com/plugchain/plug/chain/config"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/genesis"
	"github.com/plugchain/plug/chain/mapreduce"
	"github.com/plugchain/plug/chain/transform"
)

// The files of a node home directory. Besides them the node keeps its bbolt
// databases there: state.db (the authenticated state) and chain.db (blocks,
// certificates, receipts, the transaction index and the consensus write-ahead data).
const (
	ConfigFile  = "config.toml"
	GenesisFile = "genesis.json"
	NodeKeyFile = "node_key.json"
	StateDB     = "state.db"
	ChainDB     = "chain.db"
	IndexDB     = "index.db"
)

// MaxHeartbeat bounds [consensus] heartbeat: an idle chain's block time, by which
// crosschain deadlines are judged, lags the clock by at most a heartbeat, and other
// chains' light clients see new headers (and validator-set changes) no later.
const MaxHeartbeat = time.Minute

// Default listen addresses written by DefaultFileConfig.
const (
	DefaultP2PListen  = "/ip4/0.0.0.0/tcp/26656"
	DefaultHTTPListen = "127.0.0.1:26657"
	DefaultLogLevel   = "info"
)

// FileConfig is the content of HOME/config.toml.
type FileConfig struct {
	// Name labels the node in logs and status.
	Name string `toml:"name"`
	// ChainID must equal the genesis file's chain_id.
	ChainID string `toml:"chain_id"`
	// Validator makes the node sign votes when its key is in the validator set.
	Validator bool            `toml:"validator"`
	P2P       P2PConfig       `toml:"p2p"`
	HTTP      HTTPConfig      `toml:"http"`
	Consensus ConsensusConfig `toml:"consensus"`
	Log       LogConfig       `toml:"log"`
	Storage   StorageConfig   `toml:"storage"`
	Query     QueryConfig     `toml:"query"`
}

// QueryConfig is the [query] section: the bounds of map-reduce queries (POST
// /v1/query, docs/queries.md). A client's limits are lowered to these; zero
// values mean the defaults.
type QueryConfig struct {
	// MaxConcurrent is how many queries run at once (DefaultMaxQueries); more
	// are answered 503 busy.
	MaxConcurrent int `toml:"max_concurrent"`
	// Timeout is the longest a query may run (mapreduce.DefaultTimeout, 2s).
	Timeout config.Duration `toml:"timeout"`
	// MaxTxs, MaxEmits and MaxOutputBytes bound what one query reads, emits
	// and answers.
	MaxTxs         int `toml:"max_txs"`
	MaxEmits       int `toml:"max_emits"`
	MaxOutputBytes int `toml:"max_output_bytes"`
}

// StorageConfig is the [storage] section; zero values mean the defaults.
type StorageConfig struct {
	// StateCacheNodes bounds the decoded state-tree nodes kept in memory (about
	// 150-300 bytes each); 0 means state.DefaultNodeCache.
	StateCacheNodes int `toml:"state_cache_nodes"`
	// Index keeps the transaction index (index.db, GET /v1/txs); nil means on.
	Index *bool `toml:"index"`
	// IndexMaxHeights keeps only the last heights in the index; 0 keeps all.
	IndexMaxHeights uint64 `toml:"index_max_heights"`
}

// P2PConfig is the [p2p] section.
type P2PConfig struct {
	// Listen is the libp2p listen multiaddr, e.g. /ip4/0.0.0.0/tcp/26656.
	Listen string `toml:"listen"`
	// Peers are full multiaddrs (ending in /p2p/<peer ID>) kept connected.
	Peers []string `toml:"peers"`
	// AllowPeers are peer IDs allowed to connect besides the validators (relays,
	// full nodes).
	AllowPeers []string `toml:"allow_peers"`
	// PrivateNetworkKeyFile, if set, holds a 32-byte pre-shared key (libp2p
	// swarm.key format, or 64 hex digits); relative paths are under the home.
	PrivateNetworkKeyFile string `toml:"private_network_key_file"`
}

// HTTPConfig is the [http] section: the gateway's address and its resource
// limits (docs/gateway.md, "Limits"). Zero values mean the defaults.
type HTTPConfig struct {
	// Listen is the gateway's host:port (API and /metrics); "" disables it.
	Listen string `toml:"listen"`
	// MaxBodyBytes is the largest body of POST /v1/tx and /v1/states; POST
	// /v1/txs takes gateway.BatchBodyFactor (8) times it. Larger: 413.
	MaxBodyBytes int64 `toml:"max_body_bytes"`
	// BodyBudgetBytes bounds the bytes of request bodies held in memory at
	// once across all connections (at least 8 x MaxBodyBytes).
	BodyBudgetBytes int64 `toml:"body_budget_bytes"`
	// BodyWait is how long a request waits for room in the budget before 503.
	BodyWait config.Duration `toml:"body_wait"`
	// MaxInFlight bounds the requests handled at once (/healthz, /metrics and
	// event streams not counted); beyond it 503. Negative: no bound.
	MaxInFlight int `toml:"max_in_flight"`
	// RateLimit is the requests per second each client IP (IPv6: /64) may send
	// on average, RateBurst how many at once; beyond 429. Negative: no limit.
	RateLimit float64 `toml:"rate_limit"`
	RateBurst int     `toml:"rate_burst"`
}

// Defaults of the [http] limits written by DefaultFileConfig.
const (
	DefaultHTTPMaxBody     = gateway.DefaultMaxBody
	DefaultHTTPBodyBudget  = gateway.DefaultBodyBudget
	DefaultHTTPBodyWait    = gateway.DefaultBodyWait
	DefaultHTTPMaxInFlight = gateway.DefaultMaxInFlight
	DefaultHTTPRateLimit   = 500
	DefaultHTTPRateBurst   = 1000
)

// GatewayOptions are the gateway options of c's limits, defaults filled in.
func (c HTTPConfig) GatewayOptions() []gateway.Option {
	maxBody := cmp.Or(c.MaxBodyBytes, DefaultHTTPMaxBody)
	budget := cmp.Or(c.BodyBudgetBytes, DefaultHTTPBodyBudget)
	wait := cmp.Or(c.BodyWait.Duration, DefaultHTTPBodyWait)
	inFlight := cmp.Or(c.MaxInFlight, DefaultHTTPMaxInFlight)
	rps, burst := cmp.Or(c.RateLimit, DefaultHTTPRateLimit), c.RateBurst
	if burst == 0 {
		burst = DefaultHTTPRateBurst
		if c.RateLimit > 0 {
			burst = max(1, int(2*c.RateLimit))
		}
	}
	return []gateway.Option{
		gateway.WithMaxBody(maxBody),
		gateway.WithBodyBudget(budget, wait),
		gateway.WithMaxInFlight(inFlight), // negative: no bound
		gateway.WithRateLimit(rps, burst), // negative: no limit
	}
}

// ConsensusConfig is the [consensus] section; zero values mean the defaults.
type ConsensusConfig struct {
	Stagger     config.Duration `toml:"stagger"`
	Propose     config.Duration `toml:"propose"`
	PreCommit   config.Duration `toml:"precommit"`
	Commit      config.Duration `toml:"commit"`
	Delta       config.Duration `toml:"delta"`
	Rebroadcast config.Duration `toml:"rebroadcast"`
	NewHeight   config.Duration `toml:"new_height"`
	// Heartbeat is the longest an idle chain goes without a block: with nothing
	// pending, a height starts only after it (see MaxHeartbeat).
	Heartbeat     config.Duration `toml:"heartbeat"`
	MaxBlockTxs   int             `toml:"max_block_txs"`
	MaxBlockBytes int             `toml:"max_block_bytes"`
}

// LogConfig is the [log] section.
type LogConfig struct {
	// Level applies to every subsystem without its own: debug, info, warn, error.
	Level string `toml:"level"`
	// Format is color, plain or json.
	Format string `toml:"format"`
	// Subsystems sets levels per go-log subsystem, e.g. "plug/node" = "debug".
	Subsystems map[string]string `toml:"subsystems"`
}

func ms(v int64) config.Duration {
	return config.Duration{Duration: time.Duration(v) * time.Millisecond}
}

// DefaultFileConfig returns the configuration plug init writes.
func DefaultFileConfig(name, chainID string, validator bool) *FileConfig {
	t := consensus.DefaultTimeouts()
	return &FileConfig{
		Name: name, ChainID: chainID, Validator: validator,
		P2P: P2PConfig{Listen: DefaultP2PListen},
		HTTP: HTTPConfig{Listen: DefaultHTTPListen, MaxBodyBytes: DefaultHTTPMaxBody, BodyBudgetBytes: DefaultHTTPBodyBudget,
			BodyWait: config.Duration{Duration: DefaultHTTPBodyWait}, MaxInFlight: DefaultHTTPMaxInFlight,
			RateLimit: DefaultHTTPRateLimit, RateBurst: DefaultHTTPRateBurst},
		Consensus: ConsensusConfig{Stagger: ms(t.Stagger), Propose: ms(t.Propose), PreCommit: ms(t.PreCommit),
			Commit: ms(t.Commit), Delta: ms(t.Delta), Rebroadcast: ms(t.Rebroadcast), NewHeight: ms(t.NewHeight),
			Heartbeat: ms(t.Heartbeat), MaxBlockTxs: 10_000, MaxBlockBytes: 8 << 20},
		Log: LogConfig{Level: DefaultLogLevel, Format: "color"},
	}
}

// Home is a loaded node home: a Config ready for New plus what the node's
// process needs around it.
type Home struct {
	// Dir is the home directory.
	Dir string
	// File is config.toml as read.
	File *FileConfig
	// Config is ready for New (Metrics and Version are the caller's).
	Config Config
	// HTTPListen is the gateway's host:port ("" disables it).
	HTTPListen string
	// LogLevel, LogFormat and LogLevels are the [log] section, checked.
	LogLevel  string
	LogFormat string
	LogLevels map[string]string
	// Warnings are problems that do not stop the node (e.g. a key file readable
	// by other users).
	Warnings []string
}

// ErrConfig marks every error of LoadHome about the content of a home.
var ErrConfig = errors.New("node home")

// cfgErr formats "path: field: msg" wrapped in ErrConfig.
func cfgErr(path, field, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if field != "" {
		msg = field + ": " + msg
	}
	return fmt.Errorf("%w: %s: %s", ErrConfig, path, msg)
}

// LoadHome reads and checks config.toml, genesis.json and node_key.json in dir,
// for a node executing the transforms of reg with the models ms (the genesis
// roles must name transforms of reg). Errors name the file (and line, or field)
// and say what to do.
func LoadHome(dir string, reg *transform.Registry, ms *transform.Models) (*Home, error) {
	cfgPath := filepath.Join(dir, ConfigFile)
	f, err := ReadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	h := &Home{Dir: dir, File: f, HTTPListen: f.HTTP.Listen}
	if err := f.check(cfgPath); err != nil {
		return nil, err
	}
	genPath := filepath.Join(dir, GenesisFile)
	if _, err := os.Stat(genPath); errors.Is(err, fs.ErrNotExist) {
		return nil, cfgErr(genPath, "", "no genesis file: copy the chain's genesis.json there, "+
			"or create a new chain with `plug init --home %s --validator --force`", dir)
	}
	gen, err := genesis.Load(genPath)
	if err != nil {
		return nil, fmt.Errorf("%w: %v\n(fix the genesis file; `plug genesis validate --home %s` checks it)", ErrConfig, err, dir)
	}
	if err := gen.Validate(reg); err != nil {
		return nil, fmt.Errorf("%w: %v\n(fix the genesis file; `plug genesis validate --home %s` checks it)", ErrConfig, err, dir)
	}
	if f.ChainID != "" && f.ChainID != gen.ChainID {
		return nil, cfgErr(cfgPath, "chain_id", "%q, but %s is for chain %q: use the genesis of your chain, or fix chain_id",
			f.ChainID, genPath, gen.ChainID)
	}
	keyPath := filepath.Join(dir, NodeKeyFile)
	key, err := ReadNodeKey(keyPath)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(keyPath); err == nil && st.Mode().Perm()&0o077 != 0 {
		h.Warnings = append(h.Warnings, fmt.Sprintf("%s is accessible by other users (mode %04o): run chmod 600 %s",
			keyPath, st.Mode().Perm(), keyPath))
	}
	var psk []byte
	if p := f.P2P.PrivateNetworkKeyFile; p != "" {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if psk, err = ReadPrivateNetworkKey(p); err != nil {
			return nil, cfgErr(cfgPath, "p2p.private_network_key_file", "%v", err)
		}
	}
	c := f.Consensus
	h.Config = Config{
		Name: f.Name, Home: dir, Genesis: gen, ChainID: gen.ChainID, Key: key, Validator: f.Validator,
		P2PListen: f.P2P.Listen, Peers: f.P2P.Peers, AllowPeers: f.P2P.AllowPeers, PrivateNetwork: psk,
		MaxBlockTxs: c.MaxBlockTxs, MaxBlockBytes: c.MaxBlockBytes, StateCacheNodes: f.Storage.StateCacheNodes,
		NoIndex: f.Storage.Index != nil && !*f.Storage.Index, IndexMaxHeights: f.Storage.IndexMaxHeights,
		Registry: reg, Models: ms,
		MaxQueries: f.Query.MaxConcurrent,
		QueryLimits: mapreduce.Limits{Timeout: f.Query.Timeout.Duration, MaxTxs: f.Query.MaxTxs,
			MaxEmits: f.Query.MaxEmits, MaxOutputBytes: f.Query.MaxOutputBytes},
	}
	if c != (ConsensusConfig{MaxBlockTxs: c.MaxBlockTxs, MaxBlockBytes: c.MaxBlockBytes}) {
		d := consensus.DefaultTimeouts()
		pick := func(v config.Duration, def int64) int64 {
			if v.Duration == 0 {
				return def
			}
			return v.Milliseconds()
		}
		h.Config.Timeouts = consensus.Timeouts{
			Stagger: pick(c.Stagger, d.Stagger), Propose: pick(c.Propose, d.Propose),
			PreCommit: pick(c.PreCommit, d.PreCommit), Commit: pick(c.Commit, d.Commit),
			Delta: pick(c.Delta, d.Delta), Rebroadcast: pick(c.Rebroadcast, d.Rebroadcast),
			NewHeight: pick(c.NewHeight, d.NewHeight), Heartbeat: pick(c.Heartbeat, d.Heartbeat),
		}
	}
	h.LogLevel, h.LogFormat = f.Log.Level, f.Log.Format
	if h.LogLevel == "" {
		h.LogLevel = DefaultLogLevel
	}
	if h.LogFormat == "" {
		h.LogFormat = "color"
	}
	h.LogLevels = f.Log.Subsystems
	return h, nil
}

// ReadConfig reads and decodes a config.toml; unknown fields are errors.
func ReadConfig(path string) (*FileConfig, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, cfgErr(path, "", "not found: create a node home with `plug init --home %s --chain-id ID`", filepath.Dir(path))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	var f FileConfig
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%w: %s:%d: %s (see docs/operator.md for the format)", ErrConfig, path, pe.Position.Line, pe.Message)
		}
		return nil, cfgErr(path, "", "%v (see docs/operator.md for the format)", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		names := make([]string, len(und))
		for i, k := range und {
			names[i] = k.String()
		}
		return nil, cfgErr(path, names[0], "unknown field%s: check the spelling (docs/operator.md lists the fields)",
			map[bool]string{true: " (also: " + strings.Join(names[1:], ", ") + ")", false: ""}[len(names) > 1])
	}
	return &f, nil
}

// check validates the fields that do not need the other files.
func (f *FileConfig) check(path string) error {
	if f.ChainID == "" {
		return cfgErr(path, "chain_id", "missing: set it to the genesis file's chain_id")
	}
	if f.P2P.Listen != "" {
		if _, err := ma.NewMultiaddr(f.P2P.Listen); err != nil {
			return cfgErr(path, "p2p.listen", "%q is not a multiaddr (%v): use e.g. %q", f.P2P.Listen, err, DefaultP2PListen)
		}
	}
	for i, p := range f.P2P.Peers {
		a, err := ma.NewMultiaddr(p)
		if err == nil {
			_, err = peer.AddrInfoFromP2pAddr(a)
		}
		if err != nil {
			return cfgErr(path, fmt.Sprintf("p2p.peers[%d]", i), "%q: %v: use the full address printed by `plug node id`, "+
				"e.g. /ip4/10.0.0.2/tcp/26656/p2p/12D3KooW…", p, err)
		}
	}
	for i, p := range f.P2P.AllowPeers {
		if _, err := peer.Decode(p); err != nil {
			return cfgErr(path, fmt.Sprintf("p2p.allow_peers[%d]", i), "%q is not a peer ID (%v): use the ID printed by `plug node id`", p, err)
		}
	}
	if f.HTTP.Listen != "" {
		if _, port, err := net.SplitHostPort(f.HTTP.Listen); err != nil {
			return cfgErr(path, "http.listen", "%q: %v: use host:port, e.g. %q", f.HTTP.Listen, err, DefaultHTTPListen)
		} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return cfgErr(path, "http.listen", "%q: bad port %q", f.HTTP.Listen, port)
		}
	}
	hc := f.HTTP
	switch {
	case hc.MaxBodyBytes < 0:
		return cfgErr(path, "http.max_body_bytes", "must not be negative (0 means the default, %d)", DefaultHTTPMaxBody)
	case hc.BodyBudgetBytes < 0:
		return cfgErr(path, "http.body_budget_bytes", "must not be negative (0 means the default, %d)", DefaultHTTPBodyBudget)
	case hc.BodyBudgetBytes > 0 && hc.BodyBudgetBytes < gateway.BatchBodyFactor*cmp.Or(hc.MaxBodyBytes, DefaultHTTPMaxBody):
		return cfgErr(path, "http.body_budget_bytes", "%d is less than one largest batch body (%d x max_body_bytes = %d): raise it or lower max_body_bytes",
			hc.BodyBudgetBytes, gateway.BatchBodyFactor, gateway.BatchBodyFactor*cmp.Or(hc.MaxBodyBytes, DefaultHTTPMaxBody))
	case hc.BodyWait.Duration < 0:
		return cfgErr(path, "http.body_wait", "negative duration %s", hc.BodyWait)
	case hc.RateBurst < 0:
		return cfgErr(path, "http.rate_burst", "must not be negative (0 means the default)")
	}
	c := f.Consensus
	for name, d := range map[string]config.Duration{"stagger": c.Stagger, "propose": c.Propose, "precommit": c.PreCommit,
		"commit": c.Commit, "delta": c.Delta, "rebroadcast": c.Rebroadcast, "new_height": c.NewHeight, "heartbeat": c.Heartbeat} {
		if d.Duration < 0 {
			return cfgErr(path, "consensus."+name, "negative duration %s", d)
		}
	}
	if c.Heartbeat.Duration > MaxHeartbeat {
		return cfgErr(path, "consensus.heartbeat", "%s is longer than %s: block time, which crosschain deadlines are judged by, and the headers other chains' light clients follow advance only with blocks", c.Heartbeat, MaxHeartbeat)
	}
	if f.Storage.StateCacheNodes < 0 {
		return cfgErr(path, "storage.state_cache_nodes", "must not be negative (0 means the default)")
	}
	if c.MaxBlockTxs < 0 || c.MaxBlockBytes < 0 {
		return cfgErr(path, "consensus.max_block_txs", "block limits must not be negative")
	}
	if f.Log.Level != "" {
		if _, err := logging.Parse(f.Log.Level); err != nil {
			return cfgErr(path, "log.level", "%q: use debug, info, warn or error", f.Log.Level)
		}
	}
	switch f.Log.Format {
	case "", "color", "plain", "json":
	default:
		return cfgErr(path, "log.format", "%q: use color, plain or json", f.Log.Format)
	}
	for _, sub := range slices.Sorted(mapKeys(f.Log.Subsystems)) {
		if _, err := logging.Parse(f.Log.Subsystems[sub]); err != nil {
			return cfgErr(path, "log.subsystems."+sub, "%q: use debug, info, warn or error", f.Log.Subsystems[sub])
		}
	}
	return nil
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// configTemplate writes config.toml with comments for operators.
var configTemplate = template.Must(template.New("config").Funcs(template.FuncMap{
	"q": func(s string) string { b, _ := json.Marshal(s); return string(b) },
	"list": func(l []string) string {
		if len(l) == 0 {
			return "[]"
		}
		var parts []string
		for _, s := range l {
			b, _ := json.Marshal(s)
			parts = append(parts, "\n  "+string(b)+",")
		}
		return "[" + strings.Join(parts, "") + "\n]"
	},
	"sorted": func(m map[string]string) []string { return slices.Sorted(mapKeys(m)) },
}).Parse(`# PLUG node configuration (see docs/operator.md).

# name labels this node in logs and in /v1/status.
name = {{q .Name}}
# chain_id must equal chain_id in genesis.json.
chain_id = {{q .ChainID}}
# validator: sign votes and proposals while this node's key is in the validator set.
validator = {{.Validator}}

[p2p]
# libp2p listen address (TCP).
listen = {{q .P2P.Listen}}
# Peers to dial and keep connected: full addresses from ` + "`plug node id`" + `.
peers = {{list .P2P.Peers}}
# Peer IDs allowed to connect besides the validators (full nodes, relays).
allow_peers = {{list .P2P.AllowPeers}}
# Optional 32-byte pre-shared key file (libp2p private network); relative to this home.
private_network_key_file = {{q .P2P.PrivateNetworkKeyFile}}

[http]
# Gateway (JSON API, /healthz, /metrics) host:port; "" disables it.
# Keep it on 127.0.0.1 or behind a TLS proxy unless the network is trusted.
listen = {{q .HTTP.Listen}}
# Limits (docs/gateway.md, "Limits"); 0 means the default. /healthz and /metrics are exempt.
# Largest body of POST /v1/tx and /v1/states, in bytes; POST /v1/txs takes 8 times it (larger: 413).
max_body_bytes = {{.HTTP.MaxBodyBytes}}
# Bytes of request bodies held in memory at once across all connections (at least 8 x
# max_body_bytes); a request that finds no room within body_wait gets 503 overloaded.
body_budget_bytes = {{.HTTP.BodyBudgetBytes}}
body_wait = {{q .HTTP.BodyWait.String}}
# Requests handled at once (event streams not counted); beyond: 503 overloaded. -1: no bound.
max_in_flight = {{.HTTP.MaxInFlight}}
# Requests per second per client IP (IPv6: per /64) and burst; beyond: 429 rate_limited.
# Behind a proxy all clients share the proxy's limit. -1: no limit.
rate_limit = {{.HTTP.RateLimit}}
rate_burst = {{.HTTP.RateBurst}}

[consensus]
# Round timeouts; all nodes of a chain should use the same values.
stagger = {{q .Consensus.Stagger.String}}
propose = {{q .Consensus.Propose.String}}
precommit = {{q .Consensus.PreCommit.String}}
commit = {{q .Consensus.Commit.String}}
delta = {{q .Consensus.Delta.String}}
rebroadcast = {{q .Consensus.Rebroadcast.String}}
new_height = {{q .Consensus.NewHeight.String}}
# An idle chain (nothing pending) makes one block per heartbeat; at most 1m.
heartbeat = {{q .Consensus.Heartbeat.String}}
max_block_txs = {{.Consensus.MaxBlockTxs}}
max_block_bytes = {{.Consensus.MaxBlockBytes}}

[storage]
# Decoded state-tree nodes kept in memory (each ~150-300 bytes); 0 means the default (4,000,000).
state_cache_nodes = {{.Storage.StateCacheNodes}}
# The transaction index (index.db; GET /v1/txs, plug query txs): about 170 bytes
# per transaction on disk. index = false turns it off; index_max_heights = N keeps
# only the last N heights (0 keeps all). plug node reindex rebuilds it.
# index = true
index_max_heights = {{.Storage.IndexMaxHeights}}

[log]
# debug, info, warn or error; ` + "`plug node start --log-level`" + ` overrides it.
level = {{q .Log.Level}}
# color, plain or json (logs go to standard error).
format = {{q .Log.Format}}

[log.subsystems]
# Per-subsystem levels, e.g. "plug/node" = "debug", "plug/p2p" = "warn".
{{- $s := .Log.Subsystems}}{{range sorted $s}}
{{q .}} = {{q (index $s .)}}{{end}}
`))

// WriteConfig writes f to path (mode 0644), atomically.
func WriteConfig(path string, f *FileConfig) error {
	var b bytes.Buffer
	if err := configTemplate.Execute(&b, f); err != nil {
		return err
	}
	// The written file must read back as written.
	var back FileConfig
	if _, err := toml.Decode(b.String(), &back); err != nil {
		return fmt.Errorf("config: encoding produced invalid TOML: %w", err)
	}
	return atomicfile.Write(path, b.Bytes(), 0o644)
}

// WriteGenesis writes the genesis document to path (mode 0644), atomically.
func WriteGenesis(path string, d *genesis.Doc) error {
	b, err := d.Marshal()
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o644)
}

// WriteHome creates dir (0700) and writes config.toml, and genesis.json and
// node_key.json when gen and key are not nil. It overwrites existing files:
// callers check HomeExists first.
func WriteHome(dir string, f *FileConfig, gen *genesis.Doc, key crypto.PrivateKey) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create node home: %w", err)
	}
	if key != nil {
		if err := WriteNodeKey(filepath.Join(dir, NodeKeyFile), key); err != nil {
			return err
		}
	}
	if gen != nil {
		if err := WriteGenesis(filepath.Join(dir, GenesisFile), gen); err != nil {
			return err
		}
	}
	return WriteConfig(filepath.Join(dir, ConfigFile), f)
}

// HomeExists reports which of config.toml, node_key.json, state.db and chain.db
// exist in dir.
func HomeExists(dir string) []string {
	var found []string
	for _, n := range []string{ConfigFile, NodeKeyFile, StateDB, ChainDB} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			found = append(found, n)
		}
	}
	return found
}
