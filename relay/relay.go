// Package relay is PLUG's relay daemon. It follows several chains over their HTTP
// gateways, keeps every chain's on-chain light clients of the others current
// (lc/update, one header per source block), learns crosschain transactions from
// the xchain/prepare transactions in their blocks, and carries the two-phase
// commit along: leg records to the coordinator (xchain/decide) and the decision
// back to every leg (xchain/finish).
//
// A relay is untrusted: every header, certificate and Merkle proof it submits is
// verified on chain, so it can delay settlement but never forge it. It pipelines:
// transactions to one chain get consecutive local nonces and are sent without
// waiting for each other, so a backlog clears in a few blocks. Progress (the last
// scanned block of each chain and the known XTxs with their phase) lives in a
// bbolt file, and the relay reconciles from chain state on every pass, so events
// missed while it was down are never lost. See docs/relay.md.
package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	logging "github.com/ipfs/go-log/v2"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/keyring"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/crosschain"
)

var log = logging.Logger("plug/relay")

// maxScanPerPass bounds the blocks of one chain scanned per pass, and
// maxUpdatesPerPass the header updates sent on one path per pass.
const (
	maxScanPerPass    = 500
	maxUpdatesPerPass = 200
)

// Relay is a running relay.
type Relay struct {
	cfg    *Config
	clock  Clock
	key    crypto.PrivateKey
	addr   crypto.Address
	reg    *transform.Registry
	db     *db
	m      *Metrics
	chains map[string]*chainState
	order  []string
	paths  []*pathState
	pathOf map[[2]string]*pathState

	mu   sync.Mutex // guards xtxs and dirty, and the records' phases for Status
	xtxs map[hash.Hash]*xtxRecord
	// dirty are the XTxs a scanned block touched (a prepare, decide or finish
	// of theirs): they are advanced on the next pass. The others wait for the
	// full reconciliation every RetryAfter, which reads from chain state every
	// unfinished XTx not advanced within the last RetryAfter, whatever the
	// blocks said (with thousands in flight, re-reading the ones that are
	// moving anyway made each pass slower the larger the backlog).
	dirty    map[hash.Hash]bool
	advanced map[hash.Hash]time.Time // when each unfinished XTx was last advanced
	lastFull time.Time

	triesMu sync.Mutex
	tries   map[string]try // step -> its last submission

	// pre holds the current pass's prefetched state reads; written before the
	// pass's workers start, only read while they run.
	pre map[readKey]*client.StateResult
	// obs holds the observations the prefetch filled, by XTx, for this
	// pass's advance; like pre, written before the workers start.
	obs map[hash.Hash]*crosschain.Observation
}

// Registry returns the transform registry a relay encodes with: the built-ins,
// crosschain transforms included.
func Registry() *transform.Registry { return app.Registry() }

// New opens the relay's db and clients; Run drives it.
func New(cfg *Config, opts ...Option) (*Relay, error) {
	o := options{clock: wallClock{}}
	for _, opt := range opts {
		opt(&o)
	}
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	key := cfg.Signer
	if key == nil {
		var err error
		if key, err = loadKey(cfg.Key); err != nil {
			return nil, err
		}
	}
	r := &Relay{cfg: cfg, key: key, addr: key.Public().Address(), reg: Registry(), m: NewMetrics(), clock: o.clock,
		chains: map[string]*chainState{}, pathOf: map[[2]string]*pathState{}, tries: map[string]try{},
		dirty: map[hash.Hash]bool{}, advanced: map[hash.Hash]time.Time{}}
	// Keep a connection per worker open to each node instead of redialling.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Workers + 4, IdleConnTimeout: time.Minute}}
	for _, ch := range cfg.Chains {
		var c Chain
		if o.chains != nil {
			if c = o.chains[ch.ID]; c == nil {
				return nil, fmt.Errorf("chain %s: WithChains gives no chain of that ID", ch.ID)
			}
		} else {
			cl, err := client.New(ch.Endpoints, client.WithChainID(ch.ID), client.WithHTTPClient(hc))
			if err != nil {
				return nil, fmt.Errorf("chain %s: %w", ch.ID, err)
			}
			c = cl
		}
		r.chains[ch.ID] = &chainState{id: ch.ID, c: c}
		r.order = append(r.order, ch.ID)
	}
	for _, p := range cfg.Paths {
		ps := &pathState{src: r.chains[p.Source], dst: r.chains[p.Dest], progress: r.now()}
		r.paths = append(r.paths, ps)
		r.pathOf[[2]string{p.Source, p.Dest}] = ps
	}
	d, err := openDB(cfg.DB, false)
	if err != nil {
		return nil, err
	}
	r.db = d
	if r.xtxs, err = d.xtxs(); err != nil {
		d.Close()
		return nil, err
	}
	r.m.Pending.Set(float64(r.pending()))
	return r, nil
}

func loadKey(k KeyConfig) (crypto.PrivateKey, error) {
	if k.Dir == "" {
		return nil, errors.New("key.dir: the keyring directory is required")
	}
	b := keyring.Test
	if k.Backend != "" {
		var err error
		if b, err = keyring.ParseBackend(k.Backend); err != nil {
			return nil, err
		}
	}
	kr, err := keyring.Open(k.Dir, b, k.passphrase)
	if err != nil {
		return nil, err
	}
	return kr.Get(k.Name)
}

// now is the relay's clock.
func (r *Relay) now() time.Time { return r.clock.Now() }

// Metrics returns the relay's collectors.
func (r *Relay) Metrics() *Metrics { return r.m }

// Address is the relayer's account, which needs the relayer role on every chain.
func (r *Relay) Address() crypto.Address { return r.addr }

// Close closes the db.
func (r *Relay) Close() error { return r.db.Close() }

// Run opens a relay for cfg and runs it until ctx ends.
func Run(ctx context.Context, cfg *Config) error {
	r, err := New(cfg)
	if err != nil {
		return err
	}
	defer r.Close()
	return r.Run(ctx)
}

// Run serves metrics (if configured) and relays until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	if r.cfg.MetricsListen != "" {
		ln, err := net.Listen("tcp", r.cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("metrics listen %s: %w", r.cfg.MetricsListen, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(r.m.Reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/status", r.serveStatus)
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		log.Infow("metrics listening", "addr", ln.Addr().String())
	}
	log.Infow("relay started", "name", r.cfg.Name, "relayer", r.addr.String(), "chains", r.order, "paths", len(r.paths), "known_xtxs", len(r.xtxs))
	t := time.NewTicker(r.cfg.PollInterval.Duration)
	defer t.Stop()
	wake := make(chan struct{}, 1)
	for _, id := range r.order {
		go r.follow(ctx, r.chains[id], wake)
	}
	for {
		if err := r.Pass(ctx); err != nil && ctx.Err() == nil {
			log.Warnw("relay pass", "err", err)
		}
		select {
		case <-wake:
		case <-t.C:
		case <-ctx.Done():
			log.Infow("relay stopped", "name", r.cfg.Name)
			return nil
		case <-t.C:
		}
	}
}

// follow keeps cs's event stream open and signals wake at every committed
// block, so that a pass starts as soon as there is something to relay instead
// of at the next poll: each trade waits on the relay two or three times
// (prepared, decided, finished). Polling stays as the fallback, and the pass
// still reads everything from chain state; the stream only says when.
func (r *Relay) follow(ctx context.Context, cs *chainState, wake chan<- struct{}) {
	backoff := r.cfg.PollInterval.Duration
	for ctx.Err() == nil {
		heights, err := cs.c.WatchBlocks(ctx)
		if err != nil {
			log.Debugw("event stream", "chain", cs.id, "err", err)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, 10*time.Second)
			continue
		}
		backoff = r.cfg.PollInterval.Duration
		for range heights {
			select {
			case wake <- struct{}{}:
			default: // a pass is due already
			}
		}
	}
}

// Pass does one round of work: poll every chain, scan new blocks, send header
// updates, then advance every known XTx. Errors of one chain do not stop the others.
func (r *Relay) Pass(ctx context.Context) error {
	var errs []error
	t0 := r.now()
	for _, id := range r.order {
		if err := r.poll(ctx, r.chains[id]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
		}
	}
	t1 := r.now()
	for _, id := range r.order {
		if err := r.scan(ctx, r.chains[id]); err != nil {
			errs = append(errs, fmt.Errorf("scan %s: %w", id, err))
		}
	}
	t2 := r.now()
	busy := r.busyPaths()
	for _, p := range r.paths {
		if err := r.updateClient(ctx, p, busy[[2]string{p.src.id, p.dst.id}]); err != nil {
			errs = append(errs, fmt.Errorf("client of %s on %s: %w", p.src.id, p.dst.id, err))
		}
	}
	t3 := r.now()
	n := r.advanceAll(ctx)
	t4 := r.now()
	var fmu sync.Mutex
	var wg sync.WaitGroup
	for _, id := range r.order {
		wg.Go(func() {
			if err := r.flush(ctx, r.chains[id]); err != nil {
				fmu.Lock()
				errs = append(errs, fmt.Errorf("submit to %s: %w", id, err))
				fmu.Unlock()
			}
		})
	}
	wg.Wait()
	log.Debugw("pass", "poll", t1.Sub(t0), "scan", t2.Sub(t1), "update", t3.Sub(t2), "advance", t4.Sub(t3), "flush", r.now().Sub(t4), "xtxs", n)
	return errors.Join(errs...)
}
