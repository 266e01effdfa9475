package crosschain_test

// The crosschain simulation of random_test.go with every chain run by the real
// consensus protocol: 4-5 validators per chain, each with its own state store,
// executor and mempool, executing consensus.Machine over a seeded network (delay,
// loss, duplication, reordering, partitions that heal, crashes with restart from
// disk, one Byzantine validator on some chains), and the relays' light clients
// verifying the certificates the machines form. The crosschain layer on top is
// random_test.go's: random trades, the shipped relay (relaysim_test.go) whose chains refuse, lose and delay,
// reorders and omits, a malicious relay that forges and replays, deadlines, halted
// chains. See docs/crosschain.md, "Simulation with consensus".

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/evidence"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/mempool"
	"github.com/plugchain/plug/chain/transform"
	"github.com/plugchain/plug/chain/tx"
	"github.com/plugchain/plug/chain/validator"
	"github.com/plugchain/plug/chain/valset"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/crosschain/shard"
	"github.com/plugchain/plug/spv"
)

var (
	// flagXSimVoteCap lets Byzantine validators sign a fresh twin on every send, so
	// peers may get three or more conflicting votes of one validator in a round.
	// The machine counts at most two per validator and round; this simulation
	// found that a proof-of-lock holding the equivocator's third vote was then
	// unverifiable at honest peers, and with honest validators locked on
	// different blocks a height never decided. The machine now counts a
	// proof-of-lock's own verified votes; false restores the gentler adversary.
	flagXSimVoteCap = flag.Bool("xsim.votecap", true, "Byzantine validators sign more than two conflicting votes per round (false: at most two)")
	// flagXSimNoLagSync leaves catching up to the machine, as chain/node does.
	// This simulation found that validators left one height behind never synced:
	// the machine reported Behind only for heights beyond the next one, and the
	// peers that had decided might have restarted with no decision to hand out.
	// The machine now reports Behind for the next height once peers have spoken
	// of it for two rebroadcast intervals; false makes the driver sync such
	// validators itself after xLagSync ms, as the simulation first did.
	flagXSimNoLagSync = flag.Bool("xsim.nolagsync", true, "no driver sync of validators left one height behind (false: the driver syncs them)")
)

// xscenario is a seeded draw of a whole run.
type xscenario struct {
	chains    int
	steps     int // world seconds of the chaos phase
	trades    int
	nets      []netScenario
	settle    int  // world seconds allowed to settle once healed
	unchecked bool // broken variant: the chains accept a finish without a decision proof
	// noInline keeps every trade's coordinator legs prepared by their own
	// xchain/prepare, as before decides could prepare them: the found-bug
	// seeds replay the schedules they were found on.
	noInline bool
	// batch sends the relays' steps in xchain/batch transactions (chain.batch);
	// taken from the seed's bit 1, not drawn, so that the other scenarios are
	// what they were.
	batch bool
}

func drawXScenario(seed uint64) xscenario {
	r := rand.New(rand.NewPCG(seed, 0xc0ffee))
	sc := xscenario{chains: 2 + r.IntN(2), steps: 20 + r.IntN(15), trades: 2 + r.IntN(5), settle: 180, batch: seed&2 != 0}
	for i := 0; i < sc.chains; i++ {
		n := 4 + r.IntN(2)
		ns := netScenario{validators: n, powers: make([]uint64, n), byz: map[int]byzKind{}}
		var total uint64
		for j := range ns.powers {
			ns.powers[j] = 100
			if r.IntN(2) == 0 {
				ns.powers[j] = 50 + uint64(r.IntN(101))
			}
			total += ns.powers[j]
		}
		if r.IntN(3) != 0 { // one Byzantine validator, below a third of the power
			j := r.IntN(n)
			if ns.powers[j]*3 < total {
				ns.byz[j] = byzKind(1 + r.IntN(3))
			}
		}
		ns.minDelay = int64(1 + r.IntN(10))
		ns.maxDelay = ns.minDelay + int64(r.IntN(150))
		ns.loss = r.Float64() * 0.2
		ns.dup = r.Float64() * 0.15
		span := int64(sc.steps) * 1000
		for k := r.IntN(3); k > 0; k-- {
			from := r.Int64N(span)
			p := xpartition{from: from, to: from + 500 + r.Int64N(3000), side: make([]bool, n+1)}
			for j := range p.side {
				p.side[j] = r.IntN(2) == 0
			}
			ns.partitions = append(ns.partitions, p)
		}
		for k := r.IntN(3); k > 0; k-- {
			at := r.Int64N(span)
			ns.crashes = append(ns.crashes, xcrash{node: r.IntN(n), at: at, back: at + 50 + r.Int64N(3000)})
		}
		ns.stagger = 50 + int64(r.IntN(250))
		ns.newHeight = []int64{0, 50, 100, 200}[r.IntN(4)]
		sc.nets = append(sc.nets, ns)
	}
	// The absence rule, from a stream of its own so that the draws above stay
	// what the found-bug seeds were found with. Only on chains without a
	// Byzantine validator: unstaking crashed honest validators can leave a
	// Byzantine one with a third of the remaining power, beyond what the
	// protocol tolerates (docs/operator.md, "Accountability").
	ra := rand.New(rand.NewPCG(seed, 0xab5e7))
	for i := range sc.nets {
		if len(sc.nets[i].byz) == 0 && ra.IntN(2) == 0 {
			sc.nets[i].absent = uint64(2 + ra.IntN(4))
		}
	}
	return sc
}

// xstats counts what a run exercised.
type xstats struct {
	decided, laterRounds, evidence, equivocations, refusedProposals    int
	forgedRoots, forgedTxs, syncs, restarts, halts, committed, aborted int
	forgedRelayed, transfers, unchecked, lagSyncs                      int
	reports, jailed, absent                                            int
}

// xsim is one run.
type xsim struct {
	t          *testing.T
	seed       uint64
	sc         xscenario
	s          *sim // random_test.go's crosschain layer: trades, relays, malicious relay
	w          *world
	rnet       *rand.Rand
	chains     []*cchain
	q          xqueue
	seq        uint64
	events     int
	now        int64 // simulated ms since T0
	chaosStart int64
	healed     bool
	failures   []string
	trace      [32]byte
	stats      xstats
}

// xfatal carries a harness helper's Fatal out of a run, to be reported as a
// failure of the run rather than of the test (the broken variants expect some).
type xfatal string

// xtb is the tb the harness's chain helpers get.
type xtb struct{ *testing.T }

func (xtb) Helper()                           {}
func (xtb) Fatal(args ...any)                 { panic(xfatal(fmt.Sprint(args...))) }
func (xtb) Fatalf(format string, args ...any) { panic(xfatal(fmt.Sprintf(format, args...))) }

func (x *xsim) fail(format string, args ...any) {
	x.failures = append(x.failures, fmt.Sprintf("t=%dms: ", x.now)+fmt.Sprintf(format, args...))
}

func (x *xsim) stopped() bool { return len(x.failures) > 0 }

// record folds an event into the run's history, which a replay must reproduce.
func (x *xsim) record(format string, args ...any) {
	x.trace = sha256.Sum256(append(x.trace[:], fmt.Sprintf(format, args...)...))
}

var xchainIDs = []string{"alpha", "beta", "gamma"}

func newXSim(t *testing.T, seed uint64, sc xscenario) *xsim {
	x := &xsim{t: t, seed: seed, sc: sc, rnet: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
	dir := t.TempDir()
	x.w = &world{t: t, chains: map[string]*chain{}, order: xchainIDs[:sc.chains], now: T0}
	x.s = &sim{t: t, r: rand.New(rand.NewPCG(seed, seed^0x5eed)), w: x.w, halted: map[string]int64{}, inline: !sc.noInline}
	for i, id := range x.w.order {
		ns := sc.nets[i]
		c := &cchain{x: x, idx: i, id: id, sc: ns, byTx: map[hash.Hash]*pending{}, sent: map[hash.Hash]bool{}, parts: map[*pending][]*pending{}, nonces: map[crypto.Address]uint64{}, pairs: map[hash.Hash]blockPair{}, twins: map[hash.Hash][2]*consensus.Message{}}
		var keys []crypto.PrivateKey
		for j := 0; j < ns.validators; j++ {
			keys = append(keys, key(fmt.Sprintf("%s/xsim-%d/val-%d", id, seed, j)))
		}
		c.doc = xsimGenesis(id, keys, ns.powers, sc.unchecked)
		if ns.absent > 0 {
			c.doc.Accountability = &validator.Accountability{AbsentHeights: ns.absent}
		}
		for j := 0; j <= ns.validators; j++ {
			n := &cnode{c: c, idx: j, byz: ns.byz[j], path: filepath.Join(dir, fmt.Sprintf("%s-%d.db", id, j)), wake: -1}
			if j < ns.validators {
				n.key, n.addr = keys[j], addr(keys[j])
			}
			if err := c.open(n, false); err != nil {
				t.Fatal(err)
			}
			c.nodes = append(c.nodes, n)
		}
		f := c.nodes[ns.validators]
		c.set = f.nextSets[0]
		c.view = &chain{t: xtb{t}, id: id, store: f.store, ex: f.ex, reg: f.reg, vals: keys, time: T0, batch: sc.batch,
			blocks: make([]*block.Block, 1), mem: mempool.New(), raw: map[hash.Hash]*rawTx{}}
		c.view.headers, c.view.certs, c.view.nextSets = f.headers[:1:1], f.certs[:1:1], f.nextSets[:1:1]
		x.chains = append(x.chains, c)
		x.w.chains[id] = c.view
	}
	t.Cleanup(func() {
		for _, c := range x.chains {
			for _, n := range c.nodes {
				if n.store != nil {
					_ = n.store.Close()
				}
			}
		}
	})
	for _, c := range x.chains {
		for _, n := range c.nodes {
			x.drain(c, n)
		}
	}
	return x
}

// run plays the whole scenario: set-up, chaos, heal, settle; then the final checks.
func (x *xsim) run() {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(xfatal)
			if !ok {
				panic(r)
			}
			x.fail("%s", string(f))
		}
	}()
	if !x.setup() {
		return
	}
	x.s.ship = newShipped(x.s, x.seed, true)
	x.chaosStart = x.now
	for _, c := range x.chains {
		for _, cr := range c.sc.crashes {
			x.push(&xevent{at: x.now + cr.at, chain: c.idx, node: cr.node, kind: 1})
			x.push(&xevent{at: x.now + cr.back, chain: c.idx, node: cr.node, kind: 2})
		}
	}
	s := x.s
	for step := 0; step < x.sc.steps && !x.stopped(); step++ {
		x.w.now = T0 + x.now
		if len(s.trades) < x.sc.trades && s.r.IntN(4) == 0 {
			if s.r.IntN(4) == 0 {
				x.newTransfer()
			} else {
				s.newTrade()
			}
		}
		x.chaos()
		if x.sc.unchecked {
			x.uncheckedFinish() // ahead of the honest relay's finishes
		}
		s.carry(true)
		if s.r.IntN(3) == 0 {
			s.malicious()
		}
		s.deliver()
		x.flush(true)
		x.runFor(1000)
		x.check(false)
	}
	if x.stopped() {
		return
	}
	x.heal()
	s.ship.reliable()
	settled := false
	for i := 0; i < x.sc.settle && !x.stopped(); i++ {
		if settled = s.settled(); settled {
			break
		}
		x.w.now = T0 + x.now
		s.carry(false)
		s.deliver()
		x.flush(false)
		x.runFor(1000)
		x.check(false)
	}
	if x.stopped() {
		return
	}
	if !settled {
		x.fail("LIVENESS: not every trade finished %d s after the network healed: %s", x.sc.settle, x.unsettled())
		return
	}
	// Every honest validator must reach the height the relays' node has now.
	want := make([]uint64, len(x.chains))
	for i, c := range x.chains {
		want[i] = c.view.height()
	}
	x.runFor(10_000)
	for i, c := range x.chains {
		for _, n := range c.nodes {
			if n.honest() && n.height() < want[i] {
				x.fail("LIVENESS: %s at height %d, 10 s after the chain reached %d", n.name(), n.height(), want[i])
			}
		}
	}
	x.check(true)
	s.ship.checkSteps()
	for _, tr := range s.trades {
		if d, _ := x.w.chains[tr.s.XTx.Coordinator].decision(tr.s.XTx.ID()); d.Commit {
			x.stats.committed++
		} else {
			x.stats.aborted++
		}
	}
	x.stats.forgedRelayed = len(s.forged)
	for _, c := range x.chains {
		x.stats.decided += int(c.view.height())
	}
}

// setup waits for block 1 on every chain, then has the admin create on every chain
// a light client of every other one.
func (x *xsim) setup() bool {
	for i := 0; i < 240 && !x.stopped(); i++ {
		ready := true
		for _, c := range x.chains {
			ready = ready && c.view.height() >= 1
		}
		if ready {
			break
		}
		x.runFor(500)
	}
	var ps []*pending
	for _, dst := range x.chains {
		for _, src := range x.chains {
			if src != dst {
				if src.view.height() < 1 {
					x.fail("LIVENESS: %s made no block in 120 s", src.id)
					return false
				}
				ps = append(ps, dst.view.submit("lc/create", &crosschain.LCCreate{ChainID: src.id, Header: src.view.headers[1], NextSet: src.view.nextSets[1]}, admin))
			}
		}
	}
	x.flush(false)
	for i := 0; i < 240 && !x.stopped(); i++ {
		done := true
		for _, p := range ps {
			done = done && p.done
		}
		if done {
			break
		}
		x.flush(false)
		x.runFor(500)
	}
	for _, p := range ps {
		if !p.done || p.code != exec.OK {
			x.fail("lc/create: done %t, %s: %s", p.done, p.code, p.errStr)
			return false
		}
	}
	return !x.stopped()
}

// chaos halts and resumes chains: a halted chain is either down (every validator
// crashed; relays cannot reach it; the validators restart from disk) or split by a
// partition that leaves no side a quorum (relays still submit; nothing commits).
func (x *xsim) chaos() {
	s := x.s
	for _, c := range x.chains {
		if c.haltUntil != 0 {
			if x.now >= c.haltUntil {
				x.resume(c)
			}
			continue
		}
		if s.r.IntN(40) != 0 {
			continue
		}
		x.stats.halts++
		c.haltUntil = x.now + int64(2+s.r.IntN(20))*1000
		x.record("halt %s until %d", c.id, c.haltUntil)
		if s.r.IntN(2) == 0 {
			c.view.halted = true
			for _, n := range c.nodes[:c.sc.validators] {
				if n.alive() {
					c.crash(n)
				}
				n.down = true
			}
			continue
		}
		// Two sides, neither with more than two thirds of the power.
		p := &xpartition{side: make([]bool, len(c.nodes))}
		total, a := c.set.TotalPower(), uint64(0)
		for _, n := range c.nodes[:c.sc.validators] {
			if a*3 < total {
				p.side[n.idx] = true
				a += c.set[c.set.Find(n.addr)].Power
			}
		}
		if a*3 > total*2 || (total-a)*3 > total*2 {
			continue // these powers leave no such split; the chain stays up
		}
		p.side[len(c.nodes)-1] = s.r.IntN(2) == 0
		c.split = p
	}
}

func (x *xsim) resume(c *cchain) {
	c.haltUntil, c.split = 0, nil
	c.view.halted = false
	for _, n := range c.nodes {
		if n.down {
			n.down = false
			if n.alive() {
				c.restart(n)
			}
		}
	}
}

// heal ends every fault: no partition, loss or duplication from now on, halted
// chains resume and crashed validators restart.
func (x *xsim) heal() {
	x.healed = true
	for _, c := range x.chains {
		x.resume(c)
		for _, n := range c.nodes {
			if n.crashed {
				n.crashed = false
				c.restart(n)
			}
		}
	}
}

// newTransfer adds a cross-chain transfer: an Out leg and an In leg, as the
// shard client builds them.
func (x *xsim) newTransfer() {
	s, r, w := x.s, x.s.r, x.w
	src := w.order[r.IntN(len(w.order))]
	dst := w.order[r.IntN(len(w.order))]
	for dst == src {
		dst = w.order[r.IntN(len(w.order))]
	}
	from := parties[r.IntN(len(parties))]
	to := parties[r.IntN(len(parties))]
	for to == from {
		to = parties[r.IntN(len(parties))]
	}
	amount := uint64(1 + r.IntN(1000))
	if r.IntN(8) == 0 {
		amount = funds + uint64(r.IntN(1000)) // cannot be paid
	}
	xt := shard.CrossTransfer(src, dst, assets[r.IntN(len(assets))], addr(from), addr(to), amount, w.now+int64(4+r.IntN(25))*1000, uint64(len(s.trades)))
	tr := &trade{s: signed(s.t, xt, from)}
	tr.finishes = make([][]*pending, len(xt.Legs))
	tr.prepares = make([][]*pending, len(xt.Legs))
	s.trades = append(s.trades, tr)
	x.stats.transfers++
}

// flush signs what the relays and clients queued on each chain's harness pool
// (each signer's nonces in order, as a client that tracks its own does) and
// submits it to the mempools of the chain's live validators, with every earlier
// transaction not yet committed: a crashed validator lost its mempool.
func (x *xsim) flush(random bool) {
	for _, c := range x.chains {
		pool := c.view.pool
		c.view.pool = nil
		if random && x.s.r.IntN(4) == 0 && len(pool) > 1 { // reorder
			x.s.r.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
		}
		pool, parts := c.view.batched(pool)
		for p, ps := range parts {
			c.parts[p] = ps
		}
		for _, p := range pool {
			a := addr(p.signer)
			t, err := tx.New(c.view.reg, c.id, p.tr, tx.Signer{Key: p.signer.Public(), Nonce: c.nonces[a]})
			if err != nil {
				x.fail("%s: %s: %v", c.id, p.label, err)
				return
			}
			if err := t.Sign(p.signer); err != nil {
				x.fail("%s: %s: %v", c.id, p.label, err)
				return
			}
			enc, err := t.Encode()
			if err == nil {
				t, err = tx.Decode(enc) // a decoded tx keeps its bytes: cheap IDs
			}
			if err != nil {
				x.fail("%s: %s: %v", c.id, p.label, err)
				return
			}
			c.nonces[a]++
			id, _ := t.ID()
			c.byTx[id] = p
			c.outstanding = append(c.outstanding, outTx{t: t, id: id, sig: tx.VerifyProofs([]*tx.Tx{t})[0], p: p})
			x.record("tx %s %s %s", c.id, p.label, id.Short())
		}
		// What the shipped relay's chain admitted goes to the validators too.
		for _, t := range c.view.mem.Reap(1<<20, 1<<30, c.view) {
			id, _ := t.ID()
			if rt := c.view.raw[id]; rt != nil && !c.sent[id] {
				c.sent[id] = true
				c.outstanding = append(c.outstanding, outTx{t: t, id: id, sig: tx.VerifyProofs([]*tx.Tx{t})[0], p: rt.p})
				x.record("tx %s %s %s", c.id, rt.p.label, id.Short())
			}
		}
		keep := c.outstanding[:0]
		for _, o := range c.outstanding {
			if !o.p.done && (c.view.raw[o.id] == nil || c.view.mem.Has(o.id)) {
				keep = append(keep, o)
			}
		}
		c.outstanding = keep
		for _, n := range c.nodes {
			c.resend(n)
		}
	}
}

// unsettled describes what a run still waits on.
func (x *xsim) unsettled() string {
	var b strings.Builder
	for _, tr := range x.s.trades {
		xt := tr.s.XTx
		d, ok := x.w.chains[xt.Coordinator].decision(xt.ID())
		fmt.Fprintf(&b, "[%s coord %s decided %t commit %t:", xt.ID().Short(), xt.Coordinator, ok, d.Commit)
		for i, l := range xt.Legs {
			rec, _ := x.w.chains[l.Chain].leg(xt.ID(), i)
			fmt.Fprintf(&b, " %s=%q", l.Chain, rec.Status)
		}
		b.WriteString("] ")
	}
	for _, c := range x.chains {
		fmt.Fprintf(&b, "%s heights", c.id)
		for _, n := range c.nodes {
			fmt.Fprintf(&b, " %d", n.height())
		}
		fmt.Fprintf(&b, " (%d txs outstanding); ", len(c.outstanding))
	}
	return b.String()
}

// check verifies the crosschain invariants on the state the relays' nodes hold
// (which the agreement checks in commit tie to every honest validator's); final
// adds those of a settled world.
func (x *xsim) check(final bool) {
	if x.stopped() {
		return
	}
	w, s := x.w, x.s
	escrows := 0
	supply := map[string]uint64{}
	for _, c := range x.chains {
		es, err := c.view.conservation()
		if err != nil {
			x.fail("CONSERVATION: %v", err)
			return
		}
		escrows += len(es)
		for _, a := range assets {
			var n uint64
			c.view.get(asset.SupplyKey(a), &n)
			supply[a] += n
		}
	}
	for _, p := range s.forged {
		if p.done && p.code == exec.OK {
			x.fail("FORGERY: forged step %q applied", p.label)
			return
		}
	}
	if !x.checkClients() || !x.checkJailed(final) {
		return
	}
	want, flight, err := tradeOutcomes(w, s.trades, final)
	if err != nil {
		x.fail("%v", err)
		return
	}
	for a, v := range flight {
		supply[a] += v
	}
	for _, a := range assets {
		if g := uint64(len(x.chains) * len(parties) * funds); supply[a] != g {
			x.fail("CONSERVATION: %s over all chains (with transfers in flight) is %d, genesis %d", a, supply[a], g)
			return
		}
	}
	if !final {
		return
	}
	if escrows != 0 {
		x.fail("%d escrows left after every leg finished", escrows)
		return
	}
	for _, id := range w.order {
		c := w.chains[id]
		for _, a := range assets {
			var m uint64
			if c.get(crosschain.MintingKey(a), &m); m != 0 {
				x.fail("%s: %d %s still reserved for minting", id, m, a)
			}
			for _, p := range parties {
				if got := c.balance(a, p); got != want[id][a][addr(p)] {
					x.fail("%s: %s of %s = %d, want %d", id, a, addr(p), got, want[id][a][addr(p)])
					return
				}
			}
		}
	}
}

// checkJailed verifies accountability: no honest validator is ever jailed, and
// once evidence against a validator committed (finally), it holds no power.
func (x *xsim) checkJailed(final bool) bool {
	for _, c := range x.chains {
		var set valset.Set
		c.view.get(validator.SetKey, &set)
		jailed := 0
		for _, n := range c.nodes {
			if n.key == nil {
				continue
			}
			var rec validator.JailRecord
			if !c.view.get(validator.JailKey(n.addr), &rec) {
				continue
			}
			jailed++
			if n.honest() {
				x.fail("ACCOUNTABILITY: %s: honest validator %s jailed: %+v", c.id, n.name(), rec)
				return false
			}
			if set.Find(n.addr) >= 0 {
				x.fail("ACCOUNTABILITY: %s: jailed validator %s still has power %d", c.id, n.name(), set[set.Find(n.addr)].Power)
				return false
			}
		}
		if !final {
			continue
		}
		x.stats.jailed += jailed
		for _, p := range c.evidence {
			off := p.tr.(*evidence.Equivocation).Offender()
			if p.done && set.Find(off) >= 0 {
				x.fail("ACCOUNTABILITY: %s: %s committed (%s %s) but %s still has power", c.id, p.label, p.code, p.errStr, c.nameOf(off))
				return false
			}
		}
	}
	return true
}

// checkClients verifies that every root a light client holds is that of a header
// the honest validators of its chain committed: nothing forged was ever trusted.
func (x *xsim) checkClients() bool {
	ids := map[string][]hash.Hash{}
	for _, c := range x.chains {
		ids[c.id] = c.ids
	}
	for _, dst := range x.chains {
		err := dst.view.store.Iterate(crosschain.LCRootPrefix, func(k string, v []byte) error {
			src, hs, _ := strings.Cut(strings.TrimPrefix(k, crosschain.LCRootPrefix), "/")
			h, err := strconv.ParseUint(hs, 10, 64)
			if err != nil {
				return fmt.Errorf("key %q: %v", k, err)
			}
			var cs spv.ConsensusState
			if err := encoding.UnmarshalLax(v, &cs); err != nil {
				return fmt.Errorf("key %q: %v", k, err)
			}
			if h == 0 || h > uint64(len(ids[src])) || ids[src][h-1] != cs.HeaderHash {
				return fmt.Errorf("FORGERY: %s's light client of %s trusts header %s at height %d, which its validators did not commit", dst.id, src, cs.HeaderHash.Short(), h)
			}
			return nil
		})
		if err != nil {
			x.fail("%v", err)
			return false
		}
	}
	return true
}

// typeUncheckedFinish is the broken variant's finish: it trusts the decision the
// submitter claims, with no proof.
const typeUncheckedFinish = "test/unchecked-finish"

type uncheckedFinish struct {
	XTx    crosschain.XTx `cbor:"1,keyasint"`
	Leg    uint32         `cbor:"2,keyasint"`
	Commit bool           `cbor:"3,keyasint"`
}

func (u *uncheckedFinish) l() crosschain.Leg { return u.XTx.Legs[u.Leg] }

func (u *uncheckedFinish) Keys(*transform.Context) (r, w []string) {
	id := u.XTx.ID()
	if int(u.Leg) >= len(u.XTx.Legs) {
		return nil, nil
	}
	l := u.l()
	return nil, []string{crosschain.LegKey(id, int(u.Leg)), crosschain.EscrowKey(id, int(u.Leg)), asset.BalanceKey(l.Asset, l.From), asset.BalanceKey(l.Asset, l.To)}
}

func (u *uncheckedFinish) Authorizations(*transform.Context) []crypto.Address { return nil }

func (u *uncheckedFinish) Verify(ctx *transform.Context, st transform.State) error {
	if int(u.Leg) >= len(u.XTx.Legs) || u.l().Chain != ctx.ChainID || u.l().Kind != "" {
		return transform.ErrInvalid
	}
	var rec crosschain.LegRecord
	if ok, err := st.Get(crosschain.LegKey(u.XTx.ID(), int(u.Leg)), &rec); err != nil || !ok || rec.Status != crosschain.Prepared {
		return fmt.Errorf("%w: leg not prepared", transform.ErrInvalid)
	}
	return nil
}

func (u *uncheckedFinish) Apply(ctx *transform.Context, st transform.State) error {
	l, id := u.l(), u.XTx.ID()
	to, status := l.From, crosschain.Aborted
	if u.Commit {
		to, status = l.To, crosschain.Committed
	}
	if err := asset.Credit(st, l.Asset, to, l.Amount); err != nil {
		return err
	}
	if err := st.Delete(crosschain.EscrowKey(id, int(u.Leg))); err != nil {
		return err
	}
	return st.Set(crosschain.LegKey(id, int(u.Leg)), crosschain.LegRecord{Status: status, Height: ctx.Height})
}

// uncheckedFinish has mallory finish a prepared leg of a decided trade the other
// way than decided, through the broken variant's unchecked transform.
func (x *xsim) uncheckedFinish() {
	s := x.s
	for _, tr := range s.trades {
		xt := tr.s.XTx
		dec, ok := x.w.chains[xt.Coordinator].decision(xt.ID())
		if !ok {
			continue
		}
		for i, l := range xt.Legs {
			c := x.w.chains[l.Chain]
			if rec, ok := c.leg(xt.ID(), i); ok && rec.Status == crosschain.Prepared && l.Kind == "" && !c.halted && s.r.IntN(2) == 0 {
				c.submit("unchecked finish", &uncheckedFinish{XTx: xt, Leg: uint32(i), Commit: !dec.Commit}, mallory)
				x.stats.unchecked++
				return
			}
		}
	}
}

// xsimSeeds returns the first seed and the number of runs of TestConsensusSim.
func xsimSeeds(t *testing.T) (base uint64, n int) { return simSeeds(t, 2_000_001, 24, 3) }

// keepReplayStats keeps the malicious relay's replay counter of random_test.go's
// stats (which TestRandomized logs) as it was before these runs.
func keepReplayStats(t *testing.T) {
	before := stats.replays.Load()
	t.Cleanup(func() { stats.replays.Store(before) })
}

func describe(sc xscenario) string {
	var b strings.Builder
	for i, ns := range sc.nets {
		fmt.Fprintf(&b, "%s: %d validators %v byzantine %v loss %.2f dup %.2f delay %d-%dms, %d partitions, %d crashes; ",
			xchainIDs[i], ns.validators, ns.powers, ns.byz, ns.loss, ns.dup, ns.minDelay, ns.maxDelay, len(ns.partitions), len(ns.crashes))
	}
	return b.String()
}

func runXSim(t *testing.T, seed uint64, mutate func(*xscenario)) *xsim {
	sc := drawXScenario(seed)
	if mutate != nil {
		mutate(&sc)
	}
	x := newXSim(t, seed, sc)
	x.run()
	return x
}

// TestConsensusSim runs seeded worlds of 2-3 chains, each run by 4-5 validators
// executing the real consensus machine, under the crosschain layer of
// TestRandomized, and checks after every world second: one block per height and
// one state root on every honest validator, all legs of a trade committed or all
// aborted, never twice, every asset's supply conserved over the chains, no forged
// step applied; at the end, every trade settled once the network healed.
func TestConsensusSim(t *testing.T) {
	keepReplayStats(t)
	base, runs := xsimSeeds(t)
	var mu sync.Mutex
	var total xstats
	batches, skipped := stats.batches.Load(), stats.skipped.Load()
	t.Cleanup(func() {
		t.Logf("%d runs: %d blocks decided (%d after round 0), %d trades committed, %d aborted (%d transfers); "+
			"faults: %d halts, %d restarts, %d syncs (%d of laggards, see -xsim.nolagsync); byzantine: %d equivocations, %d evidence (%d submitted, %d validators jailed), %d absent validators unstaked, %d invalid proposals refused (%d forged roots, %d forged txs); %d forged relay steps refused; %d batches committed, %d steps skipped in them",
			runs, total.decided, total.laterRounds, total.committed, total.aborted, total.transfers, total.halts, total.restarts, total.syncs, total.lagSyncs,
			total.equivocations, total.evidence, total.reports, total.jailed, total.absent, total.refusedProposals, total.forgedRoots, total.forgedTxs, total.forgedRelayed,
			stats.batches.Load()-batches, stats.skipped.Load()-skipped)
	})
	for i := 0; i < runs; i++ {
		seed := base + uint64(i)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			x := runXSim(t, seed, nil)
			t.Logf("%d trades, %d blocks, %d events, %d ms simulated", len(x.s.trades), x.stats.decided, x.events, x.now)
			if x.stopped() {
				t.Errorf("seed %d failed (%s)\n  replay with: %s\n  %s",
					seed, describe(x.sc), replay(t, seed), strings.Join(x.failures, "\n  "))
			}
			mu.Lock()
			defer mu.Unlock()
			st := &x.stats
			total.decided += st.decided
			total.laterRounds += st.laterRounds
			total.committed += st.committed
			total.aborted += st.aborted
			total.transfers += st.transfers
			total.halts += st.halts
			total.restarts += st.restarts
			total.syncs += st.syncs
			total.lagSyncs += st.lagSyncs
			total.equivocations += st.equivocations
			total.reports += st.reports
			total.jailed += st.jailed
			total.absent += st.absent
			total.evidence += st.evidence
			total.refusedProposals += st.refusedProposals
			total.forgedRoots += st.forgedRoots
			total.forgedTxs += st.forgedTxs
			total.forgedRelayed += st.forgedRelayed
		})
	}
}

// TestConsensusSimReplays runs one seed twice, with a Byzantine validator and a
// crash on alpha whatever the draw, and requires the same history: every
// transaction signed and every block committed by every node, at the same
// simulated time, and the same number of events.
func TestConsensusSimReplays(t *testing.T) {
	keepReplayStats(t)
	const seed = 4
	mutate := func(sc *xscenario) {
		sc.steps = 12
		sc.nets[0].byz = map[int]byzKind{1: equivocator, 2: honestNode}
		sc.nets[0].crashes = append(sc.nets[0].crashes, xcrash{node: 3, at: 2000, back: 4000})
	}
	a, b := runXSim(t, seed, mutate), runXSim(t, seed, mutate)
	if a.stopped() || b.stopped() {
		t.Fatalf("seed %d failed: %v %v", seed, a.failures, b.failures)
	}
	if a.trace != b.trace || a.events != b.events || a.now != b.now || a.seq != b.seq {
		t.Fatalf("seed %d diverged: trace %x/%x, events %d/%d, end %d/%d", seed, a.trace[:4], b.trace[:4], a.events, b.events, a.now, b.now)
	}
	if a.stats.decided == 0 || len(a.s.trades) == 0 || a.stats.restarts == 0 || a.stats.equivocations == 0 {
		t.Fatalf("seed %d exercised too little: %d blocks, %d trades, %d restarts, %d equivocations", seed, a.stats.decided, len(a.s.trades), a.stats.restarts, a.stats.equivocations)
	}
}

// firstFailure returns the run's first failure if it carries tag.
func (x *xsim) firstFailure(tag string) string {
	if len(x.failures) > 0 && strings.Contains(x.failures[0], tag) {
		return x.failures[0]
	}
	return ""
}

// TestConsensusSimCatchesFork gives two of alpha's four validators (half the
// power, past the third the protocol tolerates) the splitter's behaviour: they
// show one block to even-numbered peers and another to odd-numbered ones, with
// votes to match. The checker must see two honest validators commit different
// blocks at one height: the agreement check can fail.
func TestConsensusSimCatchesFork(t *testing.T) {
	keepReplayStats(t)
	for seed := uint64(1); seed <= 10; seed++ {
		x := runXSim(t, seed, func(sc *xscenario) {
			sc.chains, sc.nets, sc.steps = 2, sc.nets[:2], 15
			sc.nets[0] = netScenario{validators: 4, powers: []uint64{100, 100, 100, 100}, byz: map[int]byzKind{0: splitter, 1: splitter},
				minDelay: 1, maxDelay: 20, stagger: 100, newHeight: 50}
		})
		if f := x.firstFailure("SAFETY"); f != "" {
			t.Logf("seed %d: %s", seed, f)
			return
		}
		t.Logf("seed %d: no fork (%v)", seed, x.failures)
	}
	t.Fatal("half of the power splitting the network never forked a chain: the agreement check is too gentle")
}

// TestConsensusSimCatchesUncheckedFinish gives every chain a transform that
// finishes a leg the way its submitter claims the trade was decided, with no proof
// of the decision, and has mallory use it against the decision. The checker must
// see a leg committed against an abort decision (or aborted against a commit):
// the atomicity check can fail.
func TestConsensusSimCatchesUncheckedFinish(t *testing.T) {
	keepReplayStats(t)
	for seed := uint64(1); seed <= 10; seed++ {
		x := runXSim(t, seed, func(sc *xscenario) { sc.unchecked, sc.trades = true, 6 })
		if f := x.firstFailure("ATOMICITY"); f != "" {
			t.Logf("seed %d (%d unchecked finishes submitted): %s", seed, x.stats.unchecked, f)
			return
		}
		t.Logf("seed %d: %d unchecked finishes, failures %v", seed, x.stats.unchecked, x.failures)
	}
	t.Fatal("a finish that trusts its submitter never broke atomicity: the atomicity check is too gentle")
}

// TestConsensusSimFoundBugs replays the seeds on which this simulation found
// liveness bugs in consensus.Machine (a proof-of-lock made unverifiable by an
// equivocator's third vote; validators left one height behind that never
// synced; a whole chain restarted with split locks and no proof-of-lock
// persisted). Each halted its chain before the fix; they must settle now.
func TestConsensusSimFoundBugs(t *testing.T) {
	if !*flagXSimVoteCap || !*flagXSimNoLagSync {
		t.Skip("needs the default adversary (-xsim.votecap) and no driver-side sync (-xsim.nolagsync)")
	}
	for _, seed := range []uint64{1796173469343932411, 1796174632442173949, 1796175350239950129} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			if x := runXSim(t, seed, func(sc *xscenario) { sc.noInline, sc.batch = true, false }); x.stopped() {
				t.Errorf("seed %d failed (%s)\n  %s", seed, describe(x.sc), strings.Join(x.failures, "\n  "))
			}
		})
	}
}
