package crosschain_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/plugchain/plug/chain/asset"
	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/crosschain"
	"github.com/plugchain/plug/crosschain/shard"
)

// TestRandomized runs seeded random worlds: random 2- and 3-leg trades on 2-3
// chains, relays that delay, duplicate, reorder and omit, chains halted past
// deadlines, and a malicious relay that forges and replays proofs. Trades
// carry references, some reusing a party's reference of an earlier trade
// with other terms; some name a coordinator no chain keeps a light client of;
// some have deadlines beyond the max lock, which some chains lower with
// xchain/set-params. The shipped relay carries the trades (relaysim_test.go).
// A failing run prints the command that replays it exactly.
func TestRandomized(t *testing.T) {
	base, runs := simSeeds(t, 1, 100, 8)
	t.Cleanup(func() {
		relayFailures.Range(func(k, v any) bool { t.Logf("relay step failed: %s x%d", k, *(v.(*int))); return true })
	})
	t.Cleanup(func() {
		t.Logf("%d runs: %d trades committed, %d aborted, %d never decidable; %d legs refused for a taken ref, %d for a missing light client, %d beyond the max lock; %d forged steps refused, %d replays, %d halts; %d batches, %d steps skipped in them",
			runs, stats.committed.Load(), stats.aborted.Load(), stats.undecidable.Load(), stats.refTaken.Load(), stats.noClient.Load(), stats.maxLock.Load(),
			stats.forged.Load(), stats.replays.Load(), stats.halts.Load(), stats.batches.Load(), stats.skipped.Load())
	})
	for i := 0; i < runs; i++ {
		seed := base + uint64(i)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			runRandom(t, seed, nil)
		})
	}
}

// TestShardedTransfers runs seeded sharded worlds: 2-4 shard chains of one logical
// network, accounts placed by shard.Network (the hash rule, or a directory for some
// seeds), random transfers of which a given fraction crosses shards (0, 10%, 50%,
// 100%) — routed as the shard client routes them: asset/transfer within a shard,
// shard.CrossTransfer between shards — with shards halted past deadlines, relays
// that delay, duplicate, reorder and omit, and a malicious relay. Besides the
// crosschain invariants, every asset's supply summed over the shards (plus what is
// in flight between a finished Out leg and its In leg) stays what it was at
// genesis, at every step. -seed=N replays one run of each fraction.
func TestShardedTransfers(t *testing.T) {
	base, runs := simSeeds(t, 1_000_001, 16, 4)
	for _, frac := range []float64{0, 0.1, 0.5, 1} {
		t.Run(fmt.Sprintf("cross=%g", frac), func(t *testing.T) {
			var cross, intra atomic.Int64
			t.Cleanup(func() {
				t.Logf("%d runs: %d cross-shard transfers, %d within a shard", runs, cross.Load(), intra.Load())
			})
			for i := 0; i < runs; i++ {
				seed := base + uint64(i)
				t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
					t.Parallel()
					sh := &sharded{cross: frac}
					runRandom(t, seed, sh)
					cross.Add(int64(sh.nCross))
					intra.Add(int64(len(sh.transfers)))
				})
			}
		})
	}
}

// sharded is the logical network of a sharded run and its intra-shard transfers.
type sharded struct {
	cross     float64
	net       *shard.Network
	transfers []shardTransfer
	nCross    int
	supply0   map[string]uint64 // per asset, summed over the shards at genesis
}

// shardTransfer is an intra-shard asset/transfer and its outcome.
type shardTransfer struct {
	chain string
	t     *asset.Transfer
	p     *pending
}

// home is where the network places a party (the harness's parties exist on every
// chain's genesis, so the rule of the latest generation decides).
func (sh *sharded) home(k crypto.PrivateKey) string {
	c := sh.net.Candidates(addr(k))
	return c[len(c)-1]
}

// newTransfer makes a random transfer, across shards with probability sh.cross.
func (s *sim) newTransfer() {
	sh, r := s.sh, s.r
	from := parties[r.IntN(len(parties))]
	wantCross := r.Float64() < sh.cross
	var tos []crypto.PrivateKey
	for _, p := range parties {
		if p != from && (sh.home(p) != sh.home(from)) == wantCross {
			tos = append(tos, p)
		}
	}
	if len(tos) == 0 {
		return // no such counterparty under this placement
	}
	to := tos[r.IntN(len(tos))]
	a := assets[r.IntN(len(assets))]
	amount := uint64(1 + r.IntN(1000))
	if r.IntN(8) == 0 {
		amount = funds + uint64(r.IntN(1000)) // cannot be paid
	}
	src, dst := sh.home(from), sh.home(to)
	if src == dst {
		c := s.w.chains[src]
		tr := &asset.Transfer{Asset: a, From: addr(from), To: addr(to), Amount: amount}
		sh.transfers = append(sh.transfers, shardTransfer{chain: src, t: tr, p: c.submit("transfer", tr, from)})
		return
	}
	x := shard.CrossTransfer(src, dst, a, addr(from), addr(to), amount, s.w.now+int64(4+r.IntN(25))*1000, uint64(len(s.trades)))
	sh.nCross++
	tr := &trade{s: signed(s.t, x, from)}
	tr.finishes = make([][]*pending, len(x.Legs))
	tr.prepares = make([][]*pending, len(x.Legs))
	s.trades = append(s.trades, tr)
}

// checkSupply checks that every asset's supply summed over the shards, plus the
// amounts between a committed Out leg and its not yet committed In leg (minus the
// reverse), is the genesis total.
func (s *sim) checkSupply() {
	total := map[string]uint64{}
	for _, id := range s.w.order {
		for _, a := range assets {
			var n uint64
			s.w.chains[id].get(asset.SupplyKey(a), &n)
			total[a] += n
		}
	}
	for _, tr := range s.trades {
		x := tr.s.XTx
		for i, l := range x.Legs {
			if l.Kind != crosschain.Out {
				continue
			}
			out, _ := s.w.chains[l.Chain].leg(x.ID(), i)
			in, _ := s.w.chains[x.Legs[i+1].Chain].leg(x.ID(), i+1)
			switch {
			case out.Status == crosschain.Committed && in.Status != crosschain.Committed:
				total[l.Asset] += l.Amount
			case in.Status == crosschain.Committed && out.Status != crosschain.Committed:
				total[l.Asset] -= l.Amount
			}
		}
	}
	for _, a := range assets {
		if total[a] != s.sh.supply0[a] {
			s.t.Fatalf("%s: supply over the shards (with in-flight transfers) is %d, genesis %d", a, total[a], s.sh.supply0[a])
		}
	}
}

var stats struct {
	committed, aborted, undecidable, forged, replays, halts, batches, skipped atomic.Int64
	refTaken, noClient, maxLock                                               atomic.Int64
}

// unreachable is the coordinator of the trades no chain can see decided: no
// chain of any world keeps a light client of it, so every leg is refused.
const unreachable = "omega"

// simMaxLock is the max lock some chains of TestRandomized set: within the
// range of the trades' deadlines, so that one chain refuses what another
// prepares.
const simMaxLock = 20_000

// trade is a random XTx and what the harness knows of it.
type trade struct {
	s        *crosschain.Signed
	decides  []*pending   // honest and replayed decides
	finishes [][]*pending // per leg
	prepares [][]*pending // per leg
	old      []oldStep    // steps kept for replay
	// inline: no one prepares the coordinator's own legs; the relay's decide
	// carries the parties' signatures and prepares them itself.
	inline bool
}

// oldStep is a transform once submitted, kept for replay on its chain.
type oldStep struct {
	chain string
	tr    any
}

type sim struct {
	t *testing.T
	r *rand.Rand
	// rr draws what the runs gained with trade references, light-client and
	// max-lock refusals, so that r draws what it drew before them. The
	// consensus simulation, which draws none of them, leaves it nil.
	rr     *rand.Rand
	w      *world
	trades []*trade
	forged []*pending
	// delayed holds steps a relay carries late: each due at a world time.
	delayed []delayedStep
	halted  map[string]int64 // chain -> time it resumes
	sh      *sharded         // nil: random multi-leg trades, not a sharded network
	// inline makes every other fully signed trade one whose coordinator legs
	// the decide prepares (chosen by nonce, so no draw of r changes).
	inline bool
	// escrowed is, per chain, party and reference, the XTx that escrowed
	// (prepared or committed a leg) there under it.
	escrowed map[refAt]hash.Hash
	// params are the xchain/set-params the run sent.
	params []*pending
	// ship is the shipped relay that carries the trades.
	ship *shipped
}

// refAt is a party's reference on a chain.
type refAt struct {
	chain string
	party crypto.Address
	ref   string
}

type delayedStep struct {
	due   int64
	chain string
	steps []*pending
}

func runRandom(t *testing.T, seed uint64, sh *sharded) {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	ids := []string{"alpha", "beta", "gamma"}[:2+r.IntN(2)]
	if sh != nil {
		ids = []string{"shard-0", "shard-1", "shard-2", "shard-3"}[:2+r.IntN(3)]
		sh.net = &shard.Network{Name: "sim", Assets: assets}
		for _, id := range ids {
			sh.net.Shards = append(sh.net.Shards, shard.Shard{ChainID: id})
		}
		if r.IntN(2) == 0 { // pin the parties round robin
			for i, p := range parties {
				if err := sh.net.Pin(addr(p), ids[i%len(ids)]); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := sh.net.Check(); err != nil {
			t.Fatal(err)
		}
		sh.supply0 = map[string]uint64{}
		for _, a := range assets {
			sh.supply0[a] = uint64(len(ids) * len(parties) * funds)
		}
	}
	s := &sim{t: t, r: r, w: newWorld(t, ids...), halted: map[string]int64{}, sh: sh, inline: true,
		rr: rand.New(rand.NewPCG(seed^0x2ef5, seed)), escrowed: map[refAt]hash.Hash{}}
	for _, id := range s.w.order {
		c := s.w.chains[id]
		c.serial = true
		if s.rr.IntN(4) == 0 {
			s.params = append(s.params, c.submit("set-params", &crosschain.SetParams{Params: crosschain.Params{MaxLock: simMaxLock}}, admin))
		}
	}
	if seed&2 != 0 {
		// Half the runs send the relays' steps in xchain/batch transactions.
		// Taken from the seed, not r, so that the other runs draw as before.
		for _, c := range s.w.chains {
			c.batch = true
		}
	}
	defer func() {
		if t.Failed() {
			t.Logf("seed %d failed; replay it with: %s", seed, replay(t, seed))
		}
	}()
	s.ship = newShipped(s, seed, true)
	nTrades := 2 + r.IntN(5)
	steps := 30 + r.IntN(20)
	for step := 0; step < steps; step++ {
		switch {
		case sh != nil && r.IntN(2) == 0:
			s.newTransfer()
		case sh == nil && len(s.trades) < nTrades && r.IntN(4) == 0:
			s.newTrade()
		}
		s.chaos()
		s.carry(true)
		if r.IntN(3) == 0 {
			s.malicious()
		}
		s.deliver()
		s.produce(true)
		s.check(false)
	}
	// Settle: every chain back up, one reliable relay, until every leg is finished.
	for id := range s.halted {
		delete(s.halted, id)
		s.w.chains[id].halted = false
	}
	s.ship.reliable()
	for i := 0; i < 200 && !s.settled(); i++ {
		s.carry(false)
		s.deliver()
		s.produce(false)
		s.check(false)
	}
	if !s.settled() {
		t.Fatalf("seed %d: not settled after the settle phase: %s", seed, s.unsettled())
	}
	if sh != nil {
		s.produce(false) // transfers queued on a chain that was halted until now
	}
	s.check(true)
	s.ship.checkSteps()
	s.ship.tally()
	for _, p := range s.params {
		mustOK(t, p)
	}
	for _, tr := range s.trades {
		x := tr.s.XTx
		if coord := s.w.chains[x.Coordinator]; coord == nil {
			stats.undecidable.Add(1)
		} else if d, _ := coord.decision(x.ID()); d.Commit {
			stats.committed.Add(1)
		} else {
			stats.aborted.Add(1)
		}
		for i, l := range x.Legs {
			rec, _ := s.w.chains[l.Chain].leg(x.ID(), i)
			switch {
			case strings.Contains(rec.Reason, "is already used by trade"):
				stats.refTaken.Add(1)
			case strings.Contains(rec.Reason, "light client"):
				stats.noClient.Add(1)
			case strings.Contains(rec.Reason, "max lock"):
				stats.maxLock.Add(1)
			}
		}
	}
	stats.forged.Add(int64(len(s.forged)))
}

func (s *sim) newTrade() {
	r, w := s.r, s.w
	n := 2 + r.IntN(2)
	x := crosschain.XTx{Coordinator: w.order[r.IntN(len(w.order))], Deadline: w.now + int64(4+r.IntN(25))*1000, Nonce: uint64(len(s.trades))}
	for i := 0; i < n; i++ {
		from := parties[r.IntN(len(parties))]
		to := parties[r.IntN(len(parties))]
		for to == from {
			to = parties[r.IntN(len(parties))]
		}
		amount := uint64(1 + r.IntN(1000))
		if r.IntN(8) == 0 {
			amount = funds + uint64(r.IntN(1000)) // cannot be paid
		}
		a := assets[r.IntN(len(assets))]
		if r.IntN(30) == 0 {
			a = "GOLD" // unknown
		}
		x.Legs = append(x.Legs, crosschain.Leg{Chain: w.order[r.IntN(len(w.order))], Asset: a, From: addr(from), To: addr(to), Amount: amount})
	}
	// Trades that can only end refused are fully signed: with a party's
	// signature missing, no leg would ever be recorded or decided.
	full := false
	if s.rr != nil {
		switch s.rr.IntN(12) {
		case 0:
			x.Coordinator, full = unreachable, true
		case 1:
			x.Deadline, full = w.now+crosschain.DefaultMaxLock+int64(1+s.rr.IntN(60))*1000, true
		}
		s.reference(&x)
	}
	var keys []crypto.PrivateKey
	for _, p := range x.Parties() {
		if r.IntN(20) != 0 || full { // sometimes a party never signs
			keys = append(keys, keyOf(p))
		}
	}
	tr := &trade{s: signed(s.t, x, keys...), inline: s.inline && len(keys) == len(x.Parties()) && x.Nonce%2 == 1 && x.Coordinator != unreachable}
	tr.finishes = make([][]*pending, n)
	tr.prepares = make([][]*pending, n)
	s.trades = append(s.trades, tr)
}

// reference gives half the trades a reference from a small pool, and a third
// of those the reference of a party of an earlier trade, that party paying a
// leg of this one: the same party and reference for other terms.
func (s *sim) reference(x *crosschain.XTx) {
	if s.rr.IntN(2) == 0 {
		return
	}
	x.Ref = fmt.Sprintf("R-%d", s.rr.IntN(4))
	var earlier []*crosschain.XTx
	for _, tr := range s.trades {
		if tr.s.XTx.Ref != "" {
			earlier = append(earlier, &tr.s.XTx)
		}
	}
	if len(earlier) == 0 || s.rr.IntN(3) != 0 {
		return
	}
	e := earlier[s.rr.IntN(len(earlier))]
	ps := e.Parties()
	p := ps[s.rr.IntN(len(ps))]
	x.Ref = e.Ref
	if l := &x.Legs[0]; l.To == p {
		l.To = l.From
	}
	x.Legs[0].From = p
}

func keyOf(a crypto.Address) crypto.PrivateKey {
	for _, k := range parties {
		if addr(k) == a {
			return k
		}
	}
	panic("unknown party")
}

// chaos halts and resumes chains.
func (s *sim) chaos() {
	for _, id := range s.w.order {
		c := s.w.chains[id]
		if until, ok := s.halted[id]; ok {
			if s.w.now >= until {
				delete(s.halted, id)
				c.halted = false
			}
			continue
		}
		if s.r.IntN(40) == 0 {
			s.halted[id] = s.w.now + int64(2+s.r.IntN(20))*1000
			stats.halts.Add(1)
			c.halted = true
		}
	}
}

// send hands a step (client updates, then the transaction) to the relay's pipeline:
// at once, late, twice, or not at all.
func (s *sim) send(chainID string, build func() []*pending, random bool) {
	c := s.w.chains[chainID]
	if c.halted {
		return
	}
	copies := 1
	delay := int64(0)
	if random {
		switch k := s.r.IntN(10); {
		case k == 0:
			return // omitted
		case k <= 2:
			delay = int64(1+s.r.IntN(4)) * 1000
		case k == 3:
			copies = 2
		}
	}
	for i := 0; i < copies; i++ {
		ps := build()
		if delay == 0 {
			continue // build queued them in the pool already
		}
		// Take them back out of the pool and deliver them later.
		c.pool = c.pool[:len(c.pool)-len(ps)]
		s.delayed = append(s.delayed, delayedStep{due: s.w.now + delay, chain: chainID, steps: ps})
	}
}

func (s *sim) deliver() {
	var keep []delayedStep
	for _, d := range s.delayed {
		c := s.w.chains[d.chain]
		if d.due <= s.w.now && !c.halted {
			c.pool = append(c.pool, d.steps...)
		} else {
			keep = append(keep, d)
		}
	}
	s.delayed = keep
}

// queued returns the pendings build adds to c's pool.
func queued(c *chain, build func()) []*pending {
	n := len(c.pool)
	build()
	return append([]*pending(nil), c.pool[n:]...)
}

// carry has the trades carried along by their parties and the shipped relay
// (a random run crashes the relay now and then, and restarts it from its db
// or, rarely, from nothing).
func (s *sim) carry(random bool) {
	s.clients(random)
	if random {
		switch k := s.r.IntN(100); {
		case k < 2:
			s.ship.crash(false)
		case k < 3:
			s.ship.crash(true)
		}
	}
	s.ship.pass()
}

// malicious is mallory: forged proofs (must fail) and replays of old steps (may
// succeed only where an honest relay's would).
func (s *sim) malicious() {
	if len(s.trades) == 0 {
		return
	}
	w, r := s.w, s.r
	tr := s.trades[r.IntN(len(s.trades))]
	x := tr.s.XTx
	id := x.ID()
	if w.chains[x.Coordinator] == nil {
		return
	}
	switch r.IntN(5) {
	case 0: // a leg record turned "prepared"
		i := r.IntN(len(x.Legs))
		l := x.Legs[i]
		if l.Chain == x.Coordinator {
			return
		}
		src, coord := w.chains[l.Chain], w.chains[x.Coordinator]
		rec, ok := src.leg(id, i)
		if !ok || rec.Status == crosschain.Prepared || coord.halted {
			return
		}
		p := src.prove(crosschain.LegKey(id, i))
		for _, u := range updates(coord, src) {
			coord.submit("lc/update", u, mallory)
		}
		rec.Status = crosschain.Prepared
		p.Value = encoding.MustMarshal(rec)
		s.forged = append(s.forged, coord.submit("forged leg", &crosschain.Decide{XTx: x, Proofs: []crosschain.LegProof{{Leg: uint32(i), Proof: p}}}, mallory))
	case 1: // the decision flipped
		coord := w.chains[x.Coordinator]
		dec, ok := coord.decision(id)
		if !ok {
			return
		}
		i := r.IntN(len(x.Legs))
		l := x.Legs[i]
		c := w.chains[l.Chain]
		if l.Chain == x.Coordinator || c.halted {
			return
		}
		f := w.finishTx(x, i, mallory)
		dec.Commit = !dec.Commit
		f.Decision.Value = encoding.MustMarshal(dec)
		s.forged = append(s.forged, c.submit("forged decision", f, mallory))
	case 2: // a proof of another chain's state
		i := r.IntN(len(x.Legs))
		l := x.Legs[i]
		coord := w.chains[x.Coordinator]
		var other *chain
		for _, id := range w.order {
			if id != l.Chain && id != x.Coordinator {
				other = w.chains[id]
			}
		}
		if other == nil || l.Chain == x.Coordinator || coord.halted {
			return
		}
		src := w.chains[l.Chain]
		rec, ok := src.leg(id, i)
		if !ok {
			return
		}
		// other's proof of some key it has, carrying this leg's value
		p := other.prove(crosschain.LCKey(x.Coordinator))
		p.Value = encoding.MustMarshal(rec)
		if rec.Status == crosschain.Refused {
			rec.Status = crosschain.Prepared
			p.Value = encoding.MustMarshal(rec)
		}
		s.forged = append(s.forged, coord.submit("other chain's proof", &crosschain.Decide{XTx: x, Proofs: []crosschain.LegProof{{Leg: uint32(i), Proof: p}}}, mallory))
	case 3: // a header of the attacker's making
		dst := w.chains[w.order[r.IntN(len(w.order))]]
		src := w.chains[w.order[r.IntN(len(w.order))]]
		if dst == src || dst.halted {
			return
		}
		_, u := forgedHeader(src, dst.clientHeight(src.id), []crypto.PrivateKey{mallory, alice, bob, carol})
		s.forged = append(s.forged, dst.submit("forged header", u, mallory))
	case 4: // replay an old step as is
		if len(tr.old) == 0 {
			return
		}
		o := tr.old[r.IntN(len(tr.old))]
		c := w.chains[o.chain]
		if c.halted {
			return
		}
		stats.replays.Add(1)
		switch v := o.tr.(type) {
		case *crosschain.Decide:
			tr.decides = append(tr.decides, c.submit("replayed decide", v, mallory))
		case *crosschain.Finish:
			tr.finishes[v.Leg] = append(tr.finishes[v.Leg], c.submit("replayed finish", v, mallory))
		}
	}
}

func (s *sim) produce(random bool) {
	s.w.now += 1000
	for _, id := range s.w.order {
		c := s.w.chains[id]
		if random && s.r.IntN(4) == 0 && len(c.pool) > 1 { // reorder
			s.r.Shuffle(len(c.pool), func(i, j int) { c.pool[i], c.pool[j] = c.pool[j], c.pool[i] })
		}
		c.produce(s.w.now)
	}
}

// unsettled describes the trades a run still waits on.
func (s *sim) unsettled() string {
	var b strings.Builder
	for _, tr := range s.trades {
		x := tr.s.XTx
		id := x.ID()
		coord := s.w.chains[x.Coordinator]
		var d crosschain.Decision
		ok := false
		if coord != nil {
			d, ok = coord.decision(id)
		}
		fmt.Fprintf(&b, "\n  %s coord %s deadline +%ds decided %t commit %t:", id.Short(), x.Coordinator, (x.Deadline-T0)/1000, ok, d.Commit)
		for i, l := range x.Legs {
			c := s.w.chains[l.Chain]
			rec, _ := c.leg(id, i)
			fmt.Fprintf(&b, " %d@%s=%q", i, l.Chain, rec.Status)
			if coord != nil && l.Chain != x.Coordinator {
				fmt.Fprintf(&b, "(lc %d/%d, back %d/%d)", coord.clientHeight(l.Chain), c.height(), c.clientHeight(x.Coordinator), coord.height())
			}
		}
	}
	fmt.Fprintf(&b, "\n  now +%ds", (s.w.now-T0)/1000)
	for _, id := range s.w.order {
		c := s.w.chains[id]
		fmt.Fprintf(&b, "; %s h=%d mem=%d nonce(relayer)=%d", id, c.height(), c.mem.Len(), c.nonce(addr(relayer)))
	}
	return b.String()
}

func (s *sim) settled() bool {
	for _, tr := range s.trades {
		x := tr.s.XTx
		coord := s.w.chains[x.Coordinator]
		if coord == nil {
			for i, l := range x.Legs {
				if _, ok := s.w.chains[l.Chain].leg(x.ID(), i); !ok {
					return false
				}
			}
			continue
		}
		if _, ok := coord.decision(x.ID()); !ok {
			return false
		}
		for i, l := range x.Legs {
			rec, ok := s.w.chains[l.Chain].leg(x.ID(), i)
			if !ok || (rec.Status != crosschain.Committed && rec.Status != crosschain.Aborted) {
				return false
			}
		}
	}
	return true
}

// check verifies the invariants; final adds those of a settled world.
func (s *sim) check(final bool) {
	t, w := s.t, s.w
	t.Helper()
	escrows := 0
	for _, id := range w.order {
		c := w.chains[id]
		es, err := c.conservation()
		if err != nil {
			t.Fatal(err)
		}
		escrows += len(es)
		for _, k := range es {
			var rec crosschain.LegRecord
			if lk := crosschain.LegPrefix + strings.TrimPrefix(k, crosschain.EscrowPrefix); !c.get(lk, &rec) || rec.Status != crosschain.Prepared {
				t.Fatalf("ESCROW: %s holds %s for a leg that is %q, not prepared", id, k, rec.Status)
			}
		}
	}
	if err := s.checkRefs(); err != nil {
		t.Fatal(err)
	}
	for _, p := range s.forged {
		if p.done && p.code == exec.OK {
			if d, ok := p.tr.(*crosschain.Decide); ok {
				id := d.XTx.ID()
				coord := w.chains[d.XTx.Coordinator]
				dec, _ := coord.decision(id)
				for _, lp := range d.Proofs {
					c := w.chains[d.XTx.Legs[lp.Leg].Chain]
					v, _, _ := c.store.GetAt(lp.Proof.Height+1, crosschain.LegKey(id, int(lp.Leg)))
					var real, forged crosschain.LegRecord
					encoding.UnmarshalLax(v, &real)
					encoding.UnmarshalLax(lp.Proof.Value, &forged)
					t.Logf("forged decide of %s leg %d at %d: real %+v forged %+v; decision %+v; coord time %d deadline %d", id.Short(), lp.Leg, lp.Proof.Height, real, forged, dec, coord.time, d.XTx.Deadline)
				}
			}
			t.Fatalf("forged step %q applied", p.label)
		}
	}
	if s.sh != nil {
		s.checkSupply()
	}
	want, _, err := tradeOutcomes(w, s.trades, final)
	if err != nil {
		t.Fatal(err)
	}
	if final && s.sh != nil {
		for _, tr := range s.sh.transfers {
			if !tr.p.done {
				t.Fatalf("transfer on %s never executed", tr.chain)
			}
			if tr.p.code == exec.OK {
				want[tr.chain][tr.t.Asset][tr.t.From] -= tr.t.Amount
				want[tr.chain][tr.t.Asset][tr.t.To] += tr.t.Amount
			}
		}
	}
	if final {
		if escrows != 0 {
			t.Fatalf("%d escrows left after every leg finished", escrows)
		}
		for _, id := range w.order {
			for _, a := range assets {
				for _, p := range parties {
					if got := w.chains[id].balance(a, p); got != want[id][a][addr(p)] {
						t.Fatalf("%s: %s of %s = %d, want %d", id, a, addr(p), got, want[id][a][addr(p)])
					}
				}
			}
		}
	}
}

// checkRefs checks the references: per coordinator, party and reference at
// most one XTx commits, and the coordinator's record names it; per chain,
// party and reference at most one XTx ever escrows.
func (s *sim) checkRefs() error {
	if s.escrowed == nil {
		s.escrowed = map[refAt]hash.Hash{}
	}
	committed := map[refAt]hash.Hash{}
	for _, tr := range s.trades {
		x := tr.s.XTx
		if x.Ref == "" {
			continue
		}
		id := x.ID()
		if coord := s.w.chains[x.Coordinator]; coord != nil {
			if d, ok := coord.decision(id); ok && d.Commit {
				for _, p := range x.Parties() {
					k := refAt{x.Coordinator, p, x.Ref}
					if o, dup := committed[k]; dup {
						return fmt.Errorf("REF: %s and %s both committed on %s under ref %q of %s", o.Short(), id.Short(), k.chain, k.ref, p)
					}
					committed[k] = id
					if h := coord.refHolder(keyOf(p), x.Ref); h != id {
						return fmt.Errorf("REF: %s committed on %s, whose record of ref %q of %s names %s", id.Short(), k.chain, k.ref, p, h.Short())
					}
				}
			}
		}
		for i, l := range x.Legs {
			rec, ok := s.w.chains[l.Chain].leg(id, i)
			if !ok || l.Kind == crosschain.In || (rec.Status != crosschain.Prepared && rec.Status != crosschain.Committed) {
				continue
			}
			for _, p := range x.Parties() {
				k := refAt{l.Chain, p, x.Ref}
				if o, ok := s.escrowed[k]; ok && o != id {
					return fmt.Errorf("REF: %s and %s both escrowed on %s under ref %q of %s", o.Short(), id.Short(), k.chain, k.ref, p)
				}
				s.escrowed[k] = id
			}
		}
	}
	return nil
}

// tradeOutcomes checks every trade's legs against its decision: committed only
// on a commit, aborted only on an abort, never both, no leg prepared or finished
// twice, no trade decided twice, and, when final, every leg finished. It
// returns the balances the decisions give every party (from funds, by chain,
// asset and address) and, per asset, the value in flight between a committed
// Out leg and its In leg not committed yet (added with uint64 wrap-around: a
// committed In leg whose Out leg is pending subtracts).
func tradeOutcomes(w *world, trades []*trade, final bool) (want map[string]map[string]map[crypto.Address]uint64, flight map[string]uint64, err error) {
	want = map[string]map[string]map[crypto.Address]uint64{}
	for _, id := range w.order {
		want[id] = map[string]map[crypto.Address]uint64{}
		for _, a := range assets {
			want[id][a] = map[crypto.Address]uint64{}
			for _, p := range parties {
				want[id][a][addr(p)] = funds
			}
		}
	}
	flight = map[string]uint64{}
	applied := func(ps []*pending) int {
		n := 0
		for _, p := range ps {
			if p.done && p.code == exec.OK {
				n++
			}
		}
		return n
	}
	for _, tr := range trades {
		x := tr.s.XTx
		id := x.ID()
		if w.chains[x.Coordinator] == nil {
			// No decision can ever be proven: every leg may only be refused.
			for i, l := range x.Legs {
				if rec, ok := w.chains[l.Chain].leg(id, i); (ok || final) && rec.Status != crosschain.Refused {
					return nil, nil, fmt.Errorf("ATOMICITY: leg %d of %s, whose coordinator no chain can verify, is %q", i, id.Short(), rec.Status)
				}
			}
			continue
		}
		dec, decided := w.chains[x.Coordinator].decision(id)
		committed, aborted := 0, 0
		status := make([]crosschain.Status, len(x.Legs))
		for i, l := range x.Legs {
			rec, ok := w.chains[l.Chain].leg(id, i)
			status[i] = rec.Status
			switch {
			case !ok:
			case rec.Status == crosschain.Committed:
				committed++
				if !decided || !dec.Commit {
					return nil, nil, fmt.Errorf("ATOMICITY: leg %d of %s committed without a commit decision", i, id.Short())
				}
			case rec.Status == crosschain.Aborted:
				aborted++
				if !decided || dec.Commit {
					return nil, nil, fmt.Errorf("ATOMICITY: leg %d of %s aborted without an abort decision", i, id.Short())
				}
			}
			if n := applied(tr.finishes[i]); n > 1 {
				return nil, nil, fmt.Errorf("ATOMICITY: leg %d of %s finished %d times", i, id.Short(), n)
			}
			if n := applied(tr.prepares[i]); n > 1 {
				return nil, nil, fmt.Errorf("ATOMICITY: leg %d of %s prepared %d times", i, id.Short(), n)
			}
		}
		if committed > 0 && aborted > 0 {
			return nil, nil, fmt.Errorf("ATOMICITY: %s: %d legs committed, %d aborted", id.Short(), committed, aborted)
		}
		if n := applied(tr.decides); n > 1 {
			return nil, nil, fmt.Errorf("ATOMICITY: %s decided %d times", id.Short(), n)
		}
		for i, l := range x.Legs {
			if l.Kind == crosschain.Out {
				switch out, in := status[i] == crosschain.Committed, status[i+1] == crosschain.Committed; {
				case out && !in:
					flight[l.Asset] += l.Amount
				case in && !out:
					flight[l.Asset] -= l.Amount
				}
			}
		}
		if !final {
			continue
		}
		if committed+aborted != len(x.Legs) {
			return nil, nil, fmt.Errorf("LIVENESS: %s: %d of %d legs finished", id.Short(), committed+aborted, len(x.Legs))
		}
		if dec.Commit {
			for _, l := range x.Legs {
				if l.Kind != crosschain.In {
					want[l.Chain][l.Asset][l.From] -= l.Amount
				}
				if l.Kind != crosschain.Out {
					want[l.Chain][l.Asset][l.To] += l.Amount
				}
			}
		}
	}
	return want, flight, nil
}
