package crosschain_test

// The simulations run the shipped relay (relay.Relay, its driver loop and the
// crosschain engine it asks) against the harness chains. simChain is the
// relay's view of one chain: the reads a node's gateway answers, from the
// chain's committed state and blocks, and the admission a node makes (the
// executor's checks and the node's mempool). Faults are drawn per chain from
// the run's seed: a node that refuses a whole request, admits a transaction
// and loses it, admits it late, or fails a read.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/mempool"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/relay"
	"github.com/plugchain/plug/spv"
)

// errNodeDown is what a halted chain's node answers: nothing.
var errNodeDown = errors.New("sim: node down")

// simChain is one harness chain as the shipped relay sees it (relay.Chain).
// The relay's flush runs one goroutine per chain, so a simChain touches only
// its own chain, and draws its faults from its own generator; what the sim
// must learn of the relay's submissions is queued in subs and merged, in
// chain order, after the pass.
type simChain struct {
	c      *chain
	r      *rand.Rand
	faults bool
	now    func() int64
	// held are admitted transactions a node takes in only later.
	held []heldTx
	// subs are the relay's admitted transactions of this pass, for the sim's
	// outcome checks and the malicious relay's replays.
	subs []*tx.Tx
}

type heldTx struct {
	due int64
	t   *tx.Tx
}

var _ relay.Chain = (*simChain)(nil)

func (sc *simChain) down() bool { return sc.c.halted }

// fault draws a fault with probability 1/n while faults are on.
func (sc *simChain) fault(n int) bool { return sc.faults && sc.r.IntN(n) == 0 }

func (sc *simChain) Status(context.Context) (*gateway.Status, error) {
	if sc.down() {
		return nil, errNodeDown
	}
	h := sc.c.height()
	st := &gateway.Status{ChainID: sc.c.id, Height: h}
	if h > 0 {
		st.Time = sc.c.headers[h].Time
	}
	return st, nil
}

func (sc *simChain) Nonces(_ context.Context, a crypto.Address) (*gateway.NonceInfo, error) {
	if sc.down() {
		return nil, errNodeDown
	}
	committed := sc.c.nonce(a)
	next, pending := sc.c.mem.Next(a, committed)
	return &gateway.NonceInfo{Address: a, Committed: committed, Next: next, Pending: pending}, nil
}

// SubmitBatch admits txs as a node's POST /v1/txs does: the executor's
// stateless checks, the signatures, then the mempool, with the node's answers.
func (sc *simChain) SubmitBatch(_ context.Context, txs []*tx.Tx) ([]error, error) {
	if sc.down() || sc.fault(25) {
		return nil, errNodeDown
	}
	errs := make([]error, len(txs))
	for i, t := range txs {
		switch {
		case sc.fault(30): // admitted, then lost (a node that crashed)
			continue
		case sc.fault(20): // admitted, gossiped late
			sc.held = append(sc.held, heldTx{due: sc.now() + int64(1+sc.r.IntN(4))*1000, t: t})
			sc.subs = append(sc.subs, t)
			continue
		}
		if errs[i] = sc.admit(t); errs[i] == nil {
			sc.subs = append(sc.subs, t)
		}
	}
	return errs, nil
}

// admit is a node's admission of t, its refusals in the gateway's codes.
func (sc *simChain) admit(t *tx.Tx) error {
	refuse := func(code string, err error) error {
		return &client.APIError{Endpoint: "sim/" + sc.c.id, Status: http.StatusBadRequest, Code: code, Message: err.Error()}
	}
	if err := sc.c.ex.Admit(sc.c.id, t); err != nil {
		return refuse(gateway.CodeInvalid, err)
	}
	id, err := sc.c.mem.Add(t, tx.VerifyProofs([]*tx.Tx{t})[0], sc.c)
	switch {
	case err == nil:
	case errors.Is(err, mempool.ErrFull):
		return refuse(gateway.CodeBusy, err)
	case errors.Is(err, mempool.ErrDuplicate) && sc.c.mem.Has(id):
		return nil
	case errors.Is(err, mempool.ErrDuplicate), errors.Is(err, mempool.ErrStaleNonce):
		return refuse(gateway.CodeConflict, err)
	case errors.Is(err, mempool.ErrNonceGap):
		return refuse(gateway.CodeNonceGap, err)
	default:
		return refuse(gateway.CodeInvalid, err)
	}
	return nil
}

// deliver admits the held transactions that are due.
func (sc *simChain) deliver() {
	keep := sc.held[:0]
	for _, h := range sc.held {
		if h.due > sc.now() || sc.down() {
			keep = append(keep, h)
			continue
		}
		sc.admit(h.t) // a refusal now is a transaction lost
	}
	sc.held = keep
}

func (sc *simChain) State(_ context.Context, height uint64, key string, prove bool) (*client.StateResult, error) {
	if sc.down() || sc.fault(60) {
		return nil, errNodeDown
	}
	h := height
	if h == 0 {
		h = sc.c.height()
	}
	if h > sc.c.height() {
		return nil, &client.APIError{Endpoint: "sim/" + sc.c.id, Status: http.StatusNotFound, Code: gateway.CodeNotFound,
			Message: fmt.Sprintf("height %d is above the latest %d", h, sc.c.height())}
	}
	res := &client.StateResult{Key: key, Height: h, Verified: prove}
	var err error
	if prove {
		res.Value, res.Found, res.Proof, err = sc.c.store.Prove(h+1, key)
		res.Header, res.Certificate = &sc.c.headers[h], &sc.c.certs[h]
	} else {
		res.Value, res.Found, err = sc.c.store.GetAt(h+1, key)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

func (sc *simChain) States(ctx context.Context, height uint64, keys []string, prove bool) ([]*client.StateResult, error) {
	if height == 0 {
		height = sc.c.height() // one height for the whole batch, as a node answers
	}
	out := make([]*client.StateResult, len(keys))
	for i, k := range keys {
		var err error
		if out[i], err = sc.State(ctx, height, k, prove); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (sc *simChain) Block(_ context.Context, height uint64) (*gateway.BlockResponse, error) {
	if sc.down() {
		return nil, errNodeDown
	}
	if height == 0 || height > sc.c.height() {
		return nil, &client.APIError{Endpoint: "sim/" + sc.c.id, Status: http.StatusNotFound, Code: gateway.CodeNotFound, Message: "no such block"}
	}
	return &gateway.BlockResponse{Hash: sc.c.headers[height].Hash(), Block: sc.c.blocks[height], Certificate: &sc.c.certs[height]}, nil
}

func (sc *simChain) Header(_ context.Context, height uint64) (*gateway.HeaderResponse, error) {
	if sc.down() {
		return nil, errNodeDown
	}
	if height == 0 || height > sc.c.height() {
		return nil, &client.APIError{Endpoint: "sim/" + sc.c.id, Status: http.StatusNotFound, Code: gateway.CodeNotFound, Message: "no such header"}
	}
	h := sc.c.headers[height]
	return &gateway.HeaderResponse{Hash: h.Hash(), Header: &h, Certificate: &sc.c.certs[height]}, nil
}

// WatchBlocks: the simulation calls Pass itself, once per step.
func (sc *simChain) WatchBlocks(context.Context) (<-chan uint64, error) {
	return nil, errors.New("sim: no event stream")
}

// simClock is the world's clock, for the relay.
type simClock struct{ w *world }

func (c simClock) Now() time.Time { return time.UnixMilli(c.w.now) }

// shipped is the shipped relay in a run: the daemon's code, its chains the
// harness's, its clock the world's, its db a real bbolt file.
type shipped struct {
	s      *sim
	cfg    *relay.Config
	rel    *relay.Relay
	chains map[string]*simChain
	order  []string
	// byID finds a trade by XTx id, for the outcome checks.
	byID map[hash.Hash]*trade
	// restarts counts the relay's crashes (a restart from its db) and
	// amnesias (a restart with a new, empty db).
	restarts, amnesias int
	// steps are the relay's crosschain steps a node admitted.
	steps []*pending
}

// benign are the refusals an honest relay meets: a party or an earlier copy
// of the step got there first, or a light-client update it sent was lost or
// overtaken (under faults), so a proof at its height cannot be checked yet.
// Receipts carry only text, so the checker matches the sentinels' texts.
var benign = []error{crosschain.ErrAlreadyPrepared, crosschain.ErrAlreadyDecided, crosschain.ErrAlreadyFinished,
	crosschain.ErrStaleUpdate, spv.ErrUnknownHeight, spv.ErrBadHeader}

// checkSteps fails the run if a node refused a step of the shipped relay for
// any other reason: the engine asked for a step the protocol does not allow.
func (sh *shipped) checkSteps() {
	for _, p := range sh.steps {
		if !p.done || p.code == exec.OK {
			continue
		}
		if !slices.ContainsFunc(benign, func(e error) bool { return strings.Contains(p.errStr, e.Error()) }) {
			sh.s.t.Fatalf("RELAY: a chain refused the shipped relay's %s: %s", p.label, p.errStr)
		}
	}
}

// tally counts the relay's failed steps by reason.
func (sh *shipped) tally() {
	for _, p := range sh.steps {
		if p.done && p.code != 0 {
			reason := numbers.ReplaceAllString(p.errStr, "#")
			v, _ := relayFailures.LoadOrStore(p.label+": "+reason, new(int))
			*(v.(*int))++
		}
	}
}

// newShipped starts the shipped relay over the run's chains; with faults, its
// chains refuse, lose and delay some of what it sends.
func newShipped(s *sim, seed uint64, faults bool) *shipped {
	sh := &shipped{s: s, chains: map[string]*simChain{}, byID: map[hash.Hash]*trade{}}
	cfg := &relay.Config{Name: "sim", DB: filepath.Join(s.t.TempDir(), "relay.db"), Signer: relayer, Workers: 1,
		PollInterval: relay.Duration{Duration: 200 * time.Millisecond}, RetryAfter: relay.Duration{Duration: 3 * time.Second},
		ClientRefresh: relay.Duration{Duration: 2 * time.Second}}
	batch := false
	for i, id := range s.w.order {
		c := s.w.chains[id]
		batch = batch || c.batch
		sh.chains[id] = &simChain{c: c, faults: faults, r: rand.New(rand.NewPCG(seed, uint64(i)+0x5e1a)), now: func() int64 { return s.w.now }}
		sh.order = append(sh.order, id)
		cfg.Chains = append(cfg.Chains, relay.ChainConfig{ID: id, Endpoints: []string{"sim://" + id}})
	}
	if !batch {
		cfg.BatchSteps = 1
	}
	sh.cfg = cfg
	sh.start()
	return sh
}

func (sh *shipped) start() {
	chains := map[string]relay.Chain{}
	for id, sc := range sh.chains {
		chains[id] = sc
	}
	rel, err := relay.New(sh.cfg, relay.WithChains(chains), relay.WithClock(simClock{sh.s.w}))
	if err != nil {
		sh.s.t.Fatal(err)
	}
	sh.rel = rel
	sh.s.t.Cleanup(func() { sh.rel.Close() })
}

// reliable turns the chains' faults off: the network has healed.
func (sh *shipped) reliable() {
	for _, sc := range sh.chains {
		sc.faults = false
	}
}

// crash stops the relay and starts it again from its db; amnesia from a new,
// empty one (it learns every XTx anew from the blocks).
func (sh *shipped) crash(amnesia bool) {
	if err := sh.rel.Close(); err != nil {
		sh.s.t.Fatal(err)
	}
	if amnesia {
		sh.cfg.DB = filepath.Join(sh.s.t.TempDir(), "relay.db")
		sh.amnesias++
	} else {
		sh.restarts++
	}
	sh.start()
}

// pass runs one relay pass, then has the sim learn what the relay submitted.
func (sh *shipped) pass() {
	for _, id := range sh.order {
		sh.chains[id].deliver()
	}
	sh.rel.Pass(context.Background()) // errors are the faults': the next pass retries
	for _, id := range sh.order {
		sc := sh.chains[id]
		for _, t := range sc.subs {
			sh.learn(sc.c, t)
		}
		sc.subs = nil
	}
}

// learn gives an admitted transaction of the relay its pendings: one for the
// transaction, one per step of a batch, each filed under its trade.
func (sh *shipped) learn(c *chain, t *tx.Tx) {
	id, err := t.ID()
	if err != nil || c.raw[id] != nil {
		return
	}
	tr, err := c.reg.Decode(t.Body.Type, t.Body.Payload)
	if err != nil {
		sh.s.t.Fatalf("%s: the relay sent an undecodable %s: %v", c.id, t.Body.Type, err)
	}
	rt := &rawTx{p: &pending{tr: tr, signer: relayer, label: "relay " + t.Body.Type}}
	if b, ok := tr.(*crosschain.Batch); ok {
		for i := range b.Steps {
			st, _ := b.Steps[i].Transform()
			if st == nil {
				sh.s.t.Fatalf("%s: the relay batched a step of no kind", c.id)
			}
			q := &pending{tr: st, signer: relayer, label: "relay batch step"}
			rt.parts = append(rt.parts, q)
			sh.file(c.id, q)
		}
	} else {
		sh.file(c.id, rt.p)
	}
	c.raw[id] = rt
}

// file records a crosschain step under its trade.
func (sh *shipped) file(chain string, p *pending) {
	sh.steps = append(sh.steps, p)
	var x *crosschain.XTx
	switch v := p.tr.(type) {
	case *crosschain.Prepare:
		x = &v.Tx.XTx
	case *crosschain.Decide:
		x = &v.XTx
	case *crosschain.Finish:
		x = &v.XTx
	default:
		return
	}
	id := x.ID()
	tr := sh.byID[id]
	if tr == nil {
		for _, t := range sh.s.trades {
			if t.s.XTx.ID() == id {
				tr = t
				sh.byID[id] = t
			}
		}
	}
	if tr == nil {
		sh.s.t.Fatalf("%s: the relay sent a step of %s, which no one traded", chain, id.Short())
	}
	switch v := p.tr.(type) {
	case *crosschain.Prepare:
		tr.prepares[v.Leg] = append(tr.prepares[v.Leg], p)
	case *crosschain.Decide:
		tr.decides = append(tr.decides, p)
		tr.old = append(tr.old, oldStep{chain, v})
	case *crosschain.Finish:
		tr.finishes[v.Leg] = append(tr.finishes[v.Leg], p)
		tr.old = append(tr.old, oldStep{chain, v})
	}
}

// clients are the trades' parties: each prepares its own legs, through the
// sim's faulty pipeline, now and then; the shipped relay prepares what they
// leave (and learns every XTx from their prepares). The coordinator legs of
// an inline trade are left to the relay's decide.
func (s *sim) clients(random bool) {
	for _, tr := range s.trades {
		x := tr.s.XTx
		id := x.ID()
		coord := s.w.chains[x.Coordinator]
		if coord != nil {
			if _, decided := coord.decision(id); decided {
				continue
			}
		}
		// The relay learns an XTx from a prepare in a block: an inline trade
		// needs one leg off the coordinator that its party prepares.
		inline := tr.inline && slices.ContainsFunc(x.Legs, func(l crosschain.Leg) bool { return l.Chain != x.Coordinator })
		for i, l := range x.Legs {
			c := s.w.chains[l.Chain]
			if _, ok := c.leg(id, i); ok || (inline && l.Chain == x.Coordinator && l.Kind != crosschain.In) {
				continue
			}
			if random && s.r.IntN(3) != 0 {
				continue
			}
			by := keyOf(l.From)
			s.send(l.Chain, func() []*pending {
				return queued(c, func() { tr.prepares[i] = append(tr.prepares[i], s.w.prepare(tr.s, i, by)) })
			}, random)
		}
	}
}

// numbers matches the ids, heights and amounts of an error text.
var numbers = regexp.MustCompile(`[0-9a-f]{6,}|[0-9]+`)

// relayFailures counts the shipped relay's failed steps by reason, over runs.
var relayFailures sync.Map
