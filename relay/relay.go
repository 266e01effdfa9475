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
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	logging "github.com/ipfs/go-log/v2"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/plugchain/plug/app"
	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/keyring"
	"github.com/plugchain/plug/chain/rbac"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/chain/validator"
	"github.com/plugchain/plug/chain/valset"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/spv"
)

var log = logging.Logger("plug/relay")

// maxScanPerPass bounds the blocks of one chain scanned per pass, and
// maxUpdatesPerPass the header updates sent on one path per pass.
const (
	maxScanPerPass    = 500
	maxUpdatesPerPass = 200
)

// chainState is what the relay tracks of one chain.
type chainState struct {
	id     string
	c      *client.Client
	height uint64
	time   int64 // latest block time, Unix ms
	// nonce is the relayer's next nonce here; nonceOK false forces a re-read.
	nonce     uint64
	nonceOK   bool
	committed uint64 // the relayer's committed nonce, last read
	// seen mirrors committed and epoch counts nonce resyncs, for due(), which
	// runs in workers without mu.
	seen, epoch atomic.Uint64
	// batchOK says whether the chain's RBAC policy lets the relayer send
	// xchain/batch, as of batchChecked (checkBatch).
	batchOK      bool
	batchChecked time.Time
	stuckSince   time.Time
	// stuckHeight is the chain's height at stuckSince.
	stuckHeight uint64
	// mu guards the nonce and the outbox, which workers fill during a pass.
	mu     sync.Mutex
	outbox []outStep
	// sent holds the relayer's signed transactions by nonce until their nonce
	// is committed, so that a stall resends the very same transactions (a
	// node answers a pending one as harmless) instead of signing new ones
	// over nonces still in flight.
	sent map[uint64]*tx.Tx
}

// pathState tracks dest's light client of source.
type pathState struct {
	src, dst *chainState
	// client is the light client's committed height; sent the highest header
	// submitted (committed or not).
	client, sent uint64
	progress     time.Time // when client last advanced
	refreshed    time.Time // when updates were last queued on this path
	// sentNonce and sentEpoch are the dest nonce and nonce epoch of the update
	// to sent, once a node admitted it: while it is in flight, a slow chain is
	// not taken for a lost update.
	sentNonce, sentEpoch uint64
	sentAdmitted         bool
}

// provable is the highest source height whose root dest has or will have before
// the relay's next transaction there executes.
func (p *pathState) provable() uint64 { return max(p.client, p.sent) }

// Relay is a running relay.
type Relay struct {
	cfg    *Config
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
}

// Registry returns the transform registry a relay encodes with: the built-ins,
// crosschain transforms included.
func Registry() *transform.Registry { return app.Registry() }

// New opens the relay's db and clients; Run drives it.
func New(cfg *Config) (*Relay, error) {
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
	r := &Relay{cfg: cfg, key: key, addr: key.Public().Address(), reg: Registry(), m: NewMetrics(),
		chains: map[string]*chainState{}, pathOf: map[[2]string]*pathState{}, tries: map[string]try{},
		dirty: map[hash.Hash]bool{}, advanced: map[hash.Hash]time.Time{}}
	// Keep a connection per worker open to each node instead of redialling.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Workers + 4, IdleConnTimeout: time.Minute}}
	for _, ch := range cfg.Chains {
		c, err := client.New(ch.Endpoints, client.WithChainID(ch.ID), client.WithHTTPClient(hc))
		if err != nil {
			return nil, fmt.Errorf("chain %s: %w", ch.ID, err)
		}
		r.chains[ch.ID] = &chainState{id: ch.ID, c: c}
		r.order = append(r.order, ch.ID)
	}
	for _, p := range cfg.Paths {
		ps := &pathState{src: r.chains[p.Source], dst: r.chains[p.Dest], progress: time.Now()}
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
	t0 := time.Now()
	for _, id := range r.order {
		if err := r.poll(ctx, r.chains[id]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
		}
	}
	t1 := time.Now()
	for _, id := range r.order {
		if err := r.scan(ctx, r.chains[id]); err != nil {
			errs = append(errs, fmt.Errorf("scan %s: %w", id, err))
		}
	}
	t2 := time.Now()
	busy := r.busyPaths()
	for _, p := range r.paths {
		if err := r.updateClient(ctx, p, busy[[2]string{p.src.id, p.dst.id}]); err != nil {
			errs = append(errs, fmt.Errorf("client of %s on %s: %w", p.src.id, p.dst.id, err))
		}
	}
	t3 := time.Now()
	n := r.advanceAll(ctx)
	t4 := time.Now()
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
	log.Debugw("pass", "poll", t1.Sub(t0), "scan", t2.Sub(t1), "update", t3.Sub(t2), "advance", t4.Sub(t3), "flush", time.Since(t4), "xtxs", n)
	return errors.Join(errs...)
}

// poll reads the chain's height and the relayer's committed nonce. A committed
// nonce that stays behind the local one for RetryAfter while the chain commits
// stuckBlocks blocks means transactions were lost (a slow chain that commits
// nothing is only slow), so the local nonce is re-read.
func (r *Relay) poll(ctx context.Context, cs *chainState) error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	st, err := cs.c.Status(ctx)
	if err != nil {
		return err
	}
	cs.height, cs.time = st.Height, st.Time
	r.m.Height.WithLabelValues(cs.id).Set(float64(st.Height))
	r.checkBatch(ctx, cs)
	ns, err := cs.c.Nonces(ctx, r.addr)
	if err != nil {
		return err
	}
	n := ns.Committed
	if n != cs.committed || !cs.nonceOK || n >= cs.nonce {
		cs.stuckSince, cs.stuckHeight = time.Now(), cs.height
	}
	cs.committed = n
	cs.seen.Store(n)
	for k := range cs.sent {
		if k < n {
			delete(cs.sent, k)
		}
	}
	stuck := time.Since(cs.stuckSince) > r.cfg.RetryAfter.Duration && cs.height >= cs.stuckHeight+stuckBlocks
	if cs.nonceOK && stuck && n < cs.nonce && r.resend(ctx, cs, n) {
		// Resent: the chain was only busy (a full mempool reaps others first),
		// or it lost some; either way the same nonces stay in flight.
		cs.stuckSince, cs.stuckHeight = time.Now(), cs.height
		stuck = false
	}
	if cs.nonceOK && (n > cs.nonce || stuck) {
		log.Infow("nonce resync", "chain", cs.id, "local", cs.nonce, "committed", n)
		cs.nonceOK = false
		cs.epoch.Add(1)
	}
	if !cs.nonceOK {
		cs.nonce, cs.nonceOK, cs.stuckSince, cs.stuckHeight = n, true, time.Now(), cs.height
		clear(cs.sent)
	}
	return nil
}

// batchRecheck is how often the relay re-reads whether a chain permits its
// batches: roles change rarely, and a stale answer only costs speed.
const batchRecheck = time.Minute

// checkBatch reads, at most every batchRecheck, whether the chain's RBAC policy
// lets the relayer send xchain/batch. Chains whose genesis predates it do not;
// the relay then sends each step in a transaction of its own, rather than
// batches that would all fail.
func (r *Relay) checkBatch(ctx context.Context, cs *chainState) {
	if r.cfg.BatchSteps <= 1 || time.Since(cs.batchChecked) < batchRecheck {
		return
	}
	pol, err := rbac.Load(stateReader{ctx: ctx, c: cs.c})
	if err == nil {
		err = pol.Allow(crosschain.TypeBatch, []crypto.Address{r.addr})
		if err != nil && !errors.Is(err, transform.ErrUnauthorized) {
			return // could not read the policy: ask again next poll
		}
		if ok := err == nil; ok != cs.batchOK || cs.batchChecked.IsZero() {
			if !ok {
				log.Warnw("chain does not let this relayer send xchain/batch; sending one transaction per step (grant it to the relayer role, or set batch_steps = 1)", "chain", cs.id, "err", err)
			}
			cs.batchOK = ok
		}
		cs.batchChecked = time.Now()
	}
}

// stateReader reads a chain's latest committed state over its gateway, for
// rbac.Load.
type stateReader struct {
	ctx context.Context
	c   *client.Client
}

// Get implements rbac.Reader.
func (s stateReader) Get(key string, dst any) (bool, error) {
	res, err := s.c.State(s.ctx, 0, key, false)
	if err != nil {
		return false, err
	}
	return res.Found, res.Decode(dst)
}

// resend submits again the relayer's transactions of nonces committed to
// cs.nonce-1, as they were signed. It reports false when it cannot: one of them
// is not kept, or a node refused one, and the nonce must be re-read.
func (r *Relay) resend(ctx context.Context, cs *chainState, committed uint64) bool {
	var txs []*tx.Tx
	for k := committed; k < cs.nonce; k++ {
		t := cs.sent[k]
		if t == nil {
			return false
		}
		txs = append(txs, t)
	}
	log.Infow("resending in-flight transactions", "chain", cs.id, "from", committed, "n", len(txs))
	for len(txs) > 0 {
		batch := txs[:min(len(txs), gateway.MaxBatchTxs)]
		txs = txs[len(batch):]
		res, err := cs.c.SubmitBatch(ctx, batch)
		if err != nil {
			return false
		}
		for _, e := range res {
			if e != nil && !strings.Contains(e.Error(), "busy") {
				return false
			}
		}
	}
	return true
}

// stuckBlocks is how many blocks a chain commits without any of the relayer's
// pending transactions before they count as lost.
const stuckBlocks = 3

// outStep is a transaction the relay sends to a chain at the end of a pass.
type outStep struct {
	kind string    // update, prepare, decide or finish
	key  string    // its due() key, released if it is not sent; "" for updates
	id   hash.Hash // its XTx, advanced again next pass if it is not sent
	// path is the light client an update advances: if the update is not sent,
	// the path's sent height falls back, since later updates and the proofs
	// taken at their heights cannot apply without it.
	path *pathState
	tr   transform.Transform
}

// enqueue adds a transaction for cs to this pass's batch.
func (r *Relay) enqueue(cs *chainState, s outStep) {
	cs.mu.Lock()
	cs.outbox = append(cs.outbox, s)
	cs.mu.Unlock()
}

// flush signs this pass's transactions for cs with consecutive nonces and sends
// them in batches (POST /v1/txs) without waiting for commits: one request carries
// the header updates and the steps that use them, updates first, the steps
// packed into xchain/batch transactions (pack). Transactions that do not fit
// under MaxInflight, or that the node refuses, have their steps released for
// the next pass. A refused nonce makes the next flush re-read it from the
// chain; a gap left by a refused transaction is healed by poll's stuck-nonce
// check.
func (r *Relay) flush(ctx context.Context, cs *chainState) error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := cs.outbox
	cs.outbox = nil
	if len(out) == 0 {
		return nil
	}
	release := func(us []unit) {
		r.triesMu.Lock()
		for _, u := range us {
			for _, s := range u.steps {
				if s.key != "" {
					delete(r.tries, s.key)
				}
			}
		}
		r.triesMu.Unlock()
		for _, u := range us {
			for _, s := range u.steps {
				if s.key != "" {
					r.recheck(s.id)
				}
				if up, ok := s.tr.(*crosschain.LCUpdate); ok && s.path != nil && s.path.sent >= up.Header.Height {
					s.path.sent = max(s.path.client, up.Header.Height-1)
				}
			}
		}
	}
	units := r.pack(cs, out)
	if !cs.nonceOK {
		// The next nonce counts what is still pending from before (a restart):
		// those transactions are not sent again under other nonces.
		ns, err := cs.c.Nonces(ctx, r.addr)
		if err != nil {
			release(units)
			return err
		}
		cs.nonce, cs.nonceOK, cs.committed = ns.Next, true, ns.Committed
	}
	room := int(max(0, int64(r.cfg.MaxInflight)-int64(cs.nonce-cs.committed)))
	if room < len(units) {
		release(units[room:])
		units = units[:room]
	}
	var errs []error
	for len(units) > 0 {
		batch := units[:min(len(units), gateway.MaxBatchTxs)]
		units = units[len(batch):]
		txs := make([]*tx.Tx, len(batch))
		for i, u := range batch {
			t := tx.FromPayload(cs.id, u.typ, u.payload, tx.Signer{Key: r.key.Public(), Nonce: cs.nonce + uint64(i)})
			if err := t.Sign(r.key); err != nil {
				release(batch)
				release(units)
				return errors.Join(append(errs, fmt.Errorf("sign %s: %w", u.typ, err))...)
			}
			txs[i] = t
		}
		res, err := cs.c.SubmitBatch(ctx, txs)
		if err != nil {
			// Nothing is known to be admitted: start again from the chain's nonce.
			r.m.SubmitErrors.WithLabelValues(cs.id).Inc()
			cs.nonceOK = false
			cs.epoch.Add(1)
			release(batch)
			release(units)
			return errors.Join(append(errs, err)...)
		}
		base := cs.nonce
		cs.nonce += uint64(len(batch))
		if cs.sent == nil {
			cs.sent = map[uint64]*tx.Tx{}
		}
		for i, t := range txs {
			cs.sent[base+uint64(i)] = t
			s := batch[i].steps[0]
			if u, ok := s.tr.(*crosschain.LCUpdate); ok && res[i] == nil && s.path != nil && u.Header.Height == s.path.sent {
				p := s.path
				p.sentNonce, p.sentEpoch, p.sentAdmitted = base+uint64(i), cs.epoch.Load(), true
			}
		}
		r.triesMu.Lock()
		for i, e := range res {
			if e != nil {
				continue
			}
			for _, s := range batch[i].steps {
				if t, ok := r.tries[s.key]; ok && s.key != "" {
					t.cs, t.nonce, t.epoch, t.sent = cs, base+uint64(i), cs.epoch.Load(), true
					r.tries[s.key] = t
				}
			}
		}
		r.triesMu.Unlock()
		for i, e := range res {
			if e == nil {
				for _, s := range batch[i].steps {
					r.countStep(s)
				}
				if batch[i].typ == crosschain.TypeBatch {
					r.m.Batches.WithLabelValues(cs.id).Inc()
				}
				continue
			}
			r.m.SubmitErrors.WithLabelValues(cs.id).Inc()
			release(batch[i : i+1])
			if strings.Contains(strings.ToLower(e.Error()), "nonce") && cs.nonceOK {
				cs.nonceOK = false
				cs.epoch.Add(1)
			}
			errs = append(errs, fmt.Errorf("%s: %w", batch[i].typ, e))
		}
		if !cs.nonceOK {
			release(units)
			break
		}
	}
	return errors.Join(errs...)
}

// unit is one transaction of a flush: a header update, a step alone, or an
// xchain/batch of steps.
type unit struct {
	steps   []outStep
	typ     string
	payload []byte
}

// pack turns this pass's steps for cs into transactions: each header update
// alone, each run of crosschain steps into xchain/batch transactions of up to
// BatchSteps steps that fit under the transaction size limit. A step that cannot
// be encoded is dropped and released (it is retried, and logged, next pass).
func (r *Relay) pack(cs *chainState, out []outStep) []unit {
	var units []unit
	one := func(s outStep) {
		name, err := r.reg.Name(s.tr)
		var payload []byte
		if err == nil {
			payload, err = encoding.Marshal(s.tr)
		}
		if err != nil {
			log.Warnw("encode step", "chain", cs.id, "kind", s.kind, "err", err)
			r.triesMu.Lock()
			delete(r.tries, s.key)
			r.triesMu.Unlock()
			r.recheck(s.id)
			return
		}
		units = append(units, unit{steps: []outStep{s}, typ: name, payload: payload})
	}
	var batch func(ss []outStep)
	batch = func(ss []outStep) {
		if len(ss) == 1 {
			one(ss[0])
			return
		}
		b := &crosschain.Batch{Steps: make([]crosschain.Step, len(ss))}
		for i, s := range ss {
			b.Steps[i] = crosschain.StepOf(s.tr)
		}
		payload, err := encoding.Marshal(b)
		if err != nil || len(payload) > batchPayloadLimit {
			batch(ss[:len(ss)/2])
			batch(ss[len(ss)/2:])
			return
		}
		units = append(units, unit{steps: ss, typ: crosschain.TypeBatch, payload: payload})
	}
	for i := 0; i < len(out); {
		j := i
		for j < len(out) && j-i < r.cfg.BatchSteps && cs.batchOK {
			if st := crosschain.StepOf(out[j].tr); !st.Valid() {
				break
			}
			j++
		}
		if j == i {
			one(out[i])
			i++
			continue
		}
		batch(out[i:j])
		i = j
	}
	return units
}

// batchPayloadLimit leaves room under tx.MaxTxSize for the transaction's
// envelope: its type, signer and signature.
const batchPayloadLimit = tx.MaxTxSize - 1024

// countStep counts a transaction a node admitted: a header update per path, a
// crosschain step per kind.
func (r *Relay) countStep(s outStep) {
	if s.path != nil {
		r.m.HeaderUpdates.WithLabelValues(s.path.src.id, s.path.dst.id).Inc()
		return
	}
	r.m.Proofs.WithLabelValues(s.kind).Inc()
}

// scan reads the chain's new blocks and learns the XTxs of their xchain/prepare
// transactions, saving them with the scanned height.
func (r *Relay) scan(ctx context.Context, cs *chainState) error {
	done, err := r.db.scanned()
	if err != nil {
		return err
	}
	from := done[cs.id] + 1
	to := min(cs.height, from+maxScanPerPass-1)
	if from > to {
		return nil
	}
	learned := map[hash.Hash]*xtxRecord{}
	last := from - 1
	for h := from; h <= to; h++ {
		br, err := cs.c.Block(ctx, h)
		if err != nil {
			if len(learned) > 0 || last >= from {
				break
			}
			return err
		}
		var steps []transform.Transform
		for _, t := range br.Block.Txs {
			switch t.Body.Type {
			case crosschain.TypePrepare, crosschain.TypeDecide, crosschain.TypeFinish, crosschain.TypeBatch:
			default:
				continue
			}
			// A committed payload decoded before it executed; the relay only
			// reads it, so the lax decoder does (no canonical re-encoding).
			tr, err := r.reg.New(t.Body.Type)
			if err != nil || encoding.UnmarshalLax(t.Body.Payload, tr) != nil {
				continue
			}
			if b, ok := tr.(*crosschain.Batch); ok {
				for i := range b.Steps {
					if st, _ := b.Steps[i].Transform(); st != nil {
						steps = append(steps, st)
					}
				}
				continue
			}
			steps = append(steps, tr)
		}
		for _, tr := range steps {
			var xt *crosschain.XTx
			var signed *crosschain.Signed
			switch p := tr.(type) {
			case *crosschain.Prepare:
				xt, signed = &p.Tx.XTx, &p.Tx
			case *crosschain.Decide:
				xt = &p.XTx
			case *crosschain.Finish:
				xt = &p.XTx
			}
			if xt == nil || xt.Check() != nil {
				continue
			}
			id := xt.ID()
			r.mu.Lock()
			_, known := r.xtxs[id]
			switch {
			case known:
				r.dirty[id] = true
			case signed != nil:
				// Only a prepare carries the parties' signatures, which a relay
				// needs to prepare the legs nobody prepared yet.
				rec := &xtxRecord{Signed: *signed, Phase: PhasePending, Done: make([]bool, len(xt.Legs)), Learned: time.Now().UnixMilli()}
				r.xtxs[id] = rec
				r.dirty[id] = true
				learned[id] = rec
				log.Debugw("learned xtx", "id", id.Short(), "chain", cs.id, "height", h)
			}
			r.mu.Unlock()
		}
		last = h
	}
	r.mu.Lock()
	r.m.Pending.Set(float64(r.pending()))
	r.mu.Unlock()
	return r.db.save(cs.id, last, learned)
}

// updateClient sends the headers dest's light client of source lacks: at once
// when busy (an unfinished XTx needs a proof over the path), else at most every
// ClientRefresh. Updating idle clients at every block would never let two
// chains rest: each update makes a block on its chain, whose header the other
// chain's client then lacks.
func (r *Relay) updateClient(ctx context.Context, p *pathState, busy bool) error {
	res, err := p.dst.c.State(ctx, 0, crosschain.LCKey(p.src.id), false)
	if err != nil {
		return err
	}
	if !res.Found {
		return nil // no client: an admin must lc/create it first
	}
	var c spv.ClientState
	if err := res.Decode(&c); err != nil {
		return err
	}
	if c.Height > p.client {
		p.progress = time.Now()
	}
	p.client = c.Height
	r.m.Lag.WithLabelValues(p.src.id, p.dst.id).Set(float64(p.src.height) - float64(c.Height))
	if c.Frozen {
		return fmt.Errorf("client is frozen")
	}
	// An update still in flight (its nonce not committed, no resync since) is
	// only slow; one that executed without the client reaching it, or was
	// never admitted, is sent again.
	inFlight := p.sentAdmitted && p.sentEpoch == p.dst.epoch.Load() && p.dst.seen.Load() <= p.sentNonce
	if p.sent < p.client || (p.sent > p.client && !inFlight && time.Since(p.progress) > r.cfg.RetryAfter.Duration) {
		p.sent, p.progress, p.sentAdmitted = p.client, time.Now(), false
	}
	if p.sent >= p.src.height || (!busy && time.Since(p.refreshed) < r.cfg.ClientRefresh.Duration) {
		return nil
	}
	p.refreshed = time.Now()
	for h := p.sent + 1; h <= p.src.height && h <= p.sent+maxUpdatesPerPass; h++ {
		u, err := r.headerUpdate(ctx, p.src, h)
		if err != nil {
			return err
		}
		r.enqueue(p.dst, outStep{kind: "update", path: p, tr: u})
		p.sent = h
	}
	return nil
}

// busyPaths returns the paths (source, dest) over which an unfinished XTx still
// needs a proof: a leg's record to the coordinator, the decision back to a leg.
func (r *Relay) busyPaths() map[[2]string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	busy := map[[2]string]bool{}
	for _, x := range r.xtxs {
		if x.Phase == PhaseDone {
			continue
		}
		coord := x.Signed.XTx.Coordinator
		for _, l := range x.Signed.XTx.Legs {
			if l.Chain != coord {
				busy[[2]string{l.Chain, coord}] = true
				busy[[2]string{coord, l.Chain}] = true
			}
		}
	}
	return busy
}

// headerUpdate builds the lc/update for height h of cs: its header, its commit
// certificate and the set that signs h+1 (state key "validators" at h).
func (r *Relay) headerUpdate(ctx context.Context, cs *chainState, h uint64) (*crosschain.LCUpdate, error) {
	hr, err := cs.c.Header(ctx, h)
	if err != nil {
		return nil, err
	}
	vs, err := cs.c.State(ctx, h, validator.SetKey, false)
	if err != nil {
		return nil, err
	}
	var set valset.Set
	if err := vs.Decode(&set); err != nil {
		return nil, err
	}
	return &crosschain.LCUpdate{ChainID: cs.id, Header: *hr.Header, Cert: *hr.Certificate, NextSet: set}, nil
}

// pending counts the XTxs not done.
func (r *Relay) pending() int {
	n := 0
	for _, x := range r.xtxs {
		if x.Phase != PhaseDone {
			n++
		}
	}
	return n
}

// advanceAll moves the XTxs that scanned blocks touched one step — every
// unfinished one, every RetryAfter — reading their records from chain state
// (not from events), with cfg.Workers at once, and saves those whose phase changed.
func (r *Relay) advanceAll(ctx context.Context) int {
	now := time.Now()
	full := now.Sub(r.lastFull) >= r.cfg.RetryAfter.Duration
	if full {
		r.lastFull = now
	}
	r.mu.Lock()
	ids := make([]hash.Hash, 0, len(r.dirty))
	for id := range r.dirty {
		if x := r.xtxs[id]; x != nil && x.Phase != PhaseDone {
			ids = append(ids, id)
			r.advanced[id] = now
		}
	}
	if full {
		for id, x := range r.xtxs {
			if x.Phase != PhaseDone && !r.dirty[id] && now.Sub(r.advanced[id]) >= r.cfg.RetryAfter.Duration {
				ids = append(ids, id)
				r.advanced[id] = now
			}
		}
	}
	clear(r.dirty)
	r.mu.Unlock()
	// Oldest first, so a backlog clears in the order it built up.
	slices.SortFunc(ids, func(a, b hash.Hash) int { return cmp.Compare(r.learned(a), r.learned(b)) })

	r.prefetch(ctx, ids)
	defer func() { r.pre = nil }()
	var cmu sync.Mutex
	changed := map[hash.Hash]*xtxRecord{}
	work := make(chan hash.Hash)
	var wg sync.WaitGroup
	for range min(r.cfg.Workers, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				r.mu.Lock()
				x := r.xtxs[id]
				before := fmt.Sprint(x.Phase, x.Done)
				r.mu.Unlock()
				if err := r.advance(ctx, id, x); err != nil {
					log.Debugw("advance xtx", "id", id.Short(), "err", err)
				}
				r.mu.Lock()
				after := fmt.Sprint(x.Phase, x.Done)
				r.mu.Unlock()
				if after != before {
					cmu.Lock()
					changed[id] = x
					cmu.Unlock()
					if x.Phase == PhaseDone {
						r.mu.Lock()
						delete(r.advanced, id)
						r.mu.Unlock()
						log.Infow("xtx finished", "id", id.Short(), "commit", x.Dec != nil && x.Dec.Commit)
					}
				}
			}
		}()
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		work <- id
	}
	close(work)
	wg.Wait()
	if len(changed) > 0 {
		r.mu.Lock()
		err := r.db.save("", 0, changed)
		// A finished XTx is forgotten, in memory and in the db (save drops
		// it): the chains hold its outcome, and a relay that kept every trade
		// it ever carried would grow, and slow, without bound. A step of it
		// seen again in a block is ignored; a prepare teaches it anew, and
		// the next pass finds it final.
		for id, x := range changed {
			if x.Phase == PhaseDone && err == nil {
				delete(r.xtxs, id)
				delete(r.dirty, id)
			}
		}
		r.mu.Unlock()
		if err != nil {
			log.Warnw("save xtxs", "err", err)
		}
	}
	r.mu.Lock()
	r.m.Pending.Set(float64(r.pending()))
	r.mu.Unlock()
	return len(ids)
}

// recheck makes the next pass advance id again: it waits for a light client,
// which catches up within a block or two, not for a party.
func (r *Relay) recheck(id hash.Hash) {
	r.mu.Lock()
	r.dirty[id] = true
	r.mu.Unlock()
}

// learned is when the relay learned the XTx id.
func (r *Relay) learned(id hash.Hash) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.xtxs[id].Learned
}

// try is a step's last submission: when, and once a node admitted it, on which
// chain with which nonce.
type try struct {
	at    time.Time
	sent  bool
	cs    *chainState
	nonce uint64
	epoch uint64 // cs.epoch when sent
}

// due reports whether step may be (re)submitted now, and marks it submitted. A
// step is not sent again while its transaction is still in flight — its nonce
// not yet committed, with no nonce resync since — however long the chain takes:
// under load, resending would only add duplicates to the backlog. Once its
// nonce is committed (the transaction executed, and failed or has not shown in
// state yet), it is due again RetryAfter after it was sent.
func (r *Relay) due(step string) bool {
	r.triesMu.Lock()
	defer r.triesMu.Unlock()
	if t, ok := r.tries[step]; ok {
		if t.sent && t.epoch == t.cs.epoch.Load() && t.cs.seen.Load() <= t.nonce {
			return false
		}
		if time.Since(t.at) < r.cfg.RetryAfter.Duration {
			return false
		}
	}
	r.tries[step] = try{at: time.Now()}
	return true
}

// advance moves one XTx along.
func (r *Relay) advance(ctx context.Context, id hash.Hash, x *xtxRecord) error {
	xt := &x.Signed.XTx
	coord := r.chains[xt.Coordinator]
	if coord == nil {
		return fmt.Errorf("coordinator %q is not followed", xt.Coordinator)
	}
	if x.Phase == PhasePending {
		var dec crosschain.Decision
		res, err := r.read(ctx, coord, 0, crosschain.DecisionKey(id), false)
		if err != nil {
			return err
		}
		if !res.Found {
			return r.decide(ctx, id, x, coord)
		}
		if err := res.Decode(&dec); err != nil {
			return err
		}
		r.mu.Lock()
		x.Dec, x.Phase = &dec, PhaseDecided
		r.mu.Unlock()
	}
	return r.finish(ctx, id, x, coord)
}

// decide submits xchain/decide when every leg has a record (with proofs of the
// remote ones), when a leg is refused, or when the deadline passed; it submits
// xchain/prepare for legs no one prepared yet when the parties' signatures are
// all there.
func (r *Relay) decide(ctx context.Context, id hash.Hash, x *xtxRecord, coord *chainState) error {
	xt := &x.Signed.XTx
	step := "decide/" + id.String()
	if coord.time > xt.Deadline {
		if r.due(step) {
			r.sendStep(coord, id, "decide", step, &crosschain.Decide{XTx: *xt})
		}
		return nil
	}
	var proofs []crosschain.LegProof
	ready, refused, inline := true, false, false
	for i, l := range xt.Legs {
		lc := r.chains[l.Chain]
		if lc == nil {
			ready = false
			continue
		}
		var h uint64 // 0: latest (local legs)
		if l.Chain != coord.id {
			p := r.pathOf[[2]string{l.Chain, coord.id}]
			if p == nil || p.provable() == 0 {
				ready = false
				continue
			}
			h = min(p.provable(), lc.height)
		}
		res, err := r.read(ctx, lc, h, crosschain.LegKey(id, i), h != 0)
		if err != nil {
			return err
		}
		if !res.Found {
			if h == 0 && l.Kind != crosschain.In && r.sigsOK(x) {
				// The coordinator's own leg: the decide prepares it, carrying
				// the parties' signatures (crosschain.Decide), one transaction
				// fewer than a prepare of its own.
				inline = true
				continue
			}
			ready = false
			if h != 0 && h < lc.height {
				r.recheck(id) // the record may be above what the client has yet
			}
			r.prepare(ctx, id, x, lc, i)
			continue
		}
		var rec crosschain.LegRecord
		if err := res.Decode(&rec); err != nil {
			return err
		}
		if rec.Status == crosschain.Refused {
			refused = true
		}
		if h != 0 {
			proofs = append(proofs, crosschain.LegProof{Leg: uint32(i), Proof: crosschain.Proof{Height: res.Height, Value: res.Value, Proof: res.Proof}})
		}
	}
	if (!ready && !refused) || !r.due(step) {
		return nil
	}
	d := &crosschain.Decide{XTx: *xt, Proofs: proofs}
	if inline && !refused {
		d.Sigs = x.Signed.Sigs
	}
	r.sendStep(coord, id, "decide", step, d)
	return nil
}

// sigsOK reports whether every party of x signed, checking once per XTx.
func (r *Relay) sigsOK(x *xtxRecord) bool {
	r.mu.Lock()
	v := x.sigs
	r.mu.Unlock()
	if v == 0 {
		v = -1
		if x.Signed.VerifySigs() == nil {
			v = 1
		}
		r.mu.Lock()
		x.sigs = v
		r.mu.Unlock()
	}
	return v > 0
}

// prepare submits xchain/prepare of leg i if every party signed (a relay's
// prepare without the signatures would fail anyway).
func (r *Relay) prepare(ctx context.Context, id hash.Hash, x *xtxRecord, lc *chainState, i int) {
	// The parties usually prepare their own legs, often in the same blocks;
	// the relay steps in only for legs still missing after RetryAfter.
	if time.Since(time.UnixMilli(x.Learned)) < r.cfg.RetryAfter.Duration {
		return
	}
	key := fmt.Sprintf("prepare/%s/%d", id, i)
	if !r.sigsOK(x) || !r.due(key) {
		return
	}
	r.sendStep(lc, id, "prepare", key, &crosschain.Prepare{Tx: x.Signed, Leg: uint32(i)})
}

// finish submits xchain/finish to every leg not yet finished, with a proof of the
// decision at a height the leg chain's client of the coordinator has.
func (r *Relay) finish(ctx context.Context, id hash.Hash, x *xtxRecord, coord *chainState) error {
	xt := &x.Signed.XTx
	all := true
	for i, l := range xt.Legs {
		if x.Done[i] {
			continue
		}
		all = false
		lc := r.chains[l.Chain]
		if lc == nil {
			continue
		}
		res, err := r.read(ctx, lc, 0, crosschain.LegKey(id, i), false)
		if err != nil {
			return err
		}
		var rec crosschain.LegRecord
		if err := res.Decode(&rec); err != nil {
			return err
		}
		if res.Found && (rec.Status == crosschain.Committed || rec.Status == crosschain.Aborted) {
			r.mu.Lock()
			x.Done[i] = true
			r.mu.Unlock()
			continue
		}
		f := &crosschain.Finish{XTx: *xt, Leg: uint32(i)}
		if l.Chain != coord.id {
			p := r.pathOf[[2]string{coord.id, l.Chain}]
			if p == nil || p.provable() < x.Dec.Height {
				r.recheck(id) // the client of the coordinator reaches the decision soon
				continue
			}
			h := min(p.provable(), coord.height)
			dr, err := r.read(ctx, coord, h, crosschain.DecisionKey(id), true)
			if err != nil {
				return err
			}
			if !dr.Found {
				continue
			}
			f.Decision = &crosschain.Proof{Height: dr.Height, Value: dr.Value, Proof: dr.Proof}
		}
		key := fmt.Sprintf("finish/%s/%d", id, i)
		if r.due(key) {
			r.sendStep(lc, id, "finish", key, f)
		}
	}
	if all {
		r.mu.Lock()
		x.Phase = PhaseDone
		r.mu.Unlock()
		r.triesMu.Lock()
		delete(r.tries, "decide/"+id.String())
		for i := range xt.Legs {
			delete(r.tries, fmt.Sprintf("prepare/%s/%d", id, i))
			delete(r.tries, fmt.Sprintf("finish/%s/%d", id, i))
		}
		r.triesMu.Unlock()
	}
	return nil
}

// sendStep queues one step of XTx id for this pass's batch; key is its due() key.
func (r *Relay) sendStep(cs *chainState, id hash.Hash, kind, key string, tr transform.Transform) {
	r.enqueue(cs, outStep{kind: kind, key: key, id: id, tr: tr})
}
