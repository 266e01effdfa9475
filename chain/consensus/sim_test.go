package consensus

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/valset"
)

// The simulator runs a whole network of validators in one goroutine on a seeded
// schedule: message delay, loss, duplication and reordering, partitions that heal,
// crashes with restart from the persisted state, and Byzantine validators that
// equivocate, double-propose and propose or vote for invalid blocks. After every run
// it checks the invariants of DESIGN.md: one block per height, the same state root
// on every honest node at every height, progress once the network heals.

var (
	seedFlag  = flag.Uint64("seed", 0, "replay one simulation seed (also PLUG_SEED)")
	seedsFlag = flag.Int("seeds", 0, "how many seeds TestSimulation runs (default 3000, 100 with -short)")
)

// simBlock is the simulated application's block: it chains to its parent and
// carries a payload; a Byzantine proposer can mark it invalid.
type simBlock struct {
	Height  uint64    `cbor:"1,keyasint"`
	Parent  hash.Hash `cbor:"2,keyasint"`
	Payload uint64    `cbor:"3,keyasint"`
	Invalid bool      `cbor:"4,keyasint"`
}

func (b *simBlock) id() hash.Hash { return encoding.MustHash("plug/sim-block", b) }

// simApp is one node's application: its committed chain and a state root that folds
// every committed block in.
type simApp struct {
	node   *simNode
	ids    []hash.Hash // committed block IDs by height-1
	roots  []hash.Hash // state root after each height
	rng    *rand.Rand
	forged bool // propose invalid blocks (Byzantine)
}

func (a *simApp) parent() hash.Hash {
	if len(a.ids) == 0 {
		return hash.Hash{}
	}
	return a.ids[len(a.ids)-1]
}

// pendingApp is a simApp that reports waiting transactions, so the machine's idle
// mode (no empty blocks at full speed) is simulated too; transactions "arrive" at
// random (seeded) moments.
type pendingApp struct{ *simApp }

func (a pendingApp) Pending() bool { return a.rng.IntN(20) == 0 }

// Backlog: now and then a full block is waiting, and the height skips its pause.
func (a pendingApp) Backlog() bool { return a.rng.IntN(60) == 0 }

func (a *simApp) Propose(height uint64, round uint32) ([]byte, hash.Hash, error) {
	b := &simBlock{Height: height, Parent: a.parent(), Payload: a.rng.Uint64(), Invalid: a.forged && a.rng.IntN(2) == 0}
	return encoding.MustMarshal(b), b.id(), nil
}

func (a *simApp) Validate(height uint64, raw []byte) (hash.Hash, error) {
	var b simBlock
	if err := encoding.Unmarshal(raw, &b); err != nil {
		return hash.Hash{}, err
	}
	if b.Height != height || b.Parent != a.parent() || b.Invalid {
		return hash.Hash{}, fmt.Errorf("invalid block at height %d", height)
	}
	return b.id(), nil
}

func (a *simApp) apply(raw []byte) error {
	var b simBlock
	if err := encoding.Unmarshal(raw, &b); err != nil {
		return err
	}
	if b.Invalid || b.Height != uint64(len(a.ids))+1 || b.Parent != a.parent() {
		return fmt.Errorf("committed an invalid block at height %d", b.Height)
	}
	prev := hash.Hash{}
	if len(a.roots) > 0 {
		prev = a.roots[len(a.roots)-1]
	}
	id := b.id()
	a.ids = append(a.ids, id)
	a.roots = append(a.roots, hash.Sum("plug/sim-state", prev[:], id[:], binary.BigEndian.AppendUint64(nil, b.Payload)))
	return nil
}

// disk is what survives a crash: the persisted consensus state and committed chain.
type disk struct {
	state  *State
	blocks [][]byte
	certs  []Certificate
}

type byzKind int

const (
	honest byzKind = iota
	equivocator
	forger
)

type simNode struct {
	idx   int
	key   crypto.PrivateKey
	kind  byzKind
	m     *Machine
	app   *simApp
	disk  disk
	alive bool
	wake  int64 // the tick event scheduled for this node, or -1
}

type event struct {
	at   int64
	seq  uint64
	node int
	msg  *Message // nil: tick
	kind int      // 0 message/tick, 1 crash, 2 restart
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// scenario is a seeded draw of network conditions and faults.
type scenario struct {
	validators int
	powers     []uint64
	byz        map[int]byzKind
	minDelay   int64
	maxDelay   int64
	loss       float64
	dup        float64
	partitions []partition
	crashes    []crash
	heal       int64 // from this time on: no loss, no partition, bounded delay
	end        int64
	heights    uint64 // heights every honest node must reach
	noLocking  bool
	idleMode   bool // validators wait for transactions before a height (consensus.Pender)
	// stagger is every node's proposer stagger: 50 ms (rounds split often) or
	// up to 400 ms (the default is 200).
	stagger int64
	// newHeight is every node's pause after a decision: 0, 50 (the default),
	// 100 or 200 ms; the simulation covers timeouts beyond the defaults.
	newHeight int64
}

type partition struct {
	from, to int64
	side     []bool // side[i]: node i is in group A
}

type crash struct {
	node     int
	at, back int64
}

func drawScenario(seed uint64) scenario {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	n := 4 + r.IntN(4)
	sc := scenario{validators: n, byz: map[int]byzKind{}, powers: make([]uint64, n)}
	var total uint64
	for i := range sc.powers {
		sc.powers[i] = 1 + uint64(r.IntN(10))
		total += sc.powers[i]
	}
	// Byzantine validators hold strictly less than a third of the power.
	var byzPower uint64
	for _, i := range r.Perm(n) {
		if r.IntN(3) == 0 && (byzPower+sc.powers[i])*3 < total {
			byzPower += sc.powers[i]
			sc.byz[i] = byzKind(1 + r.IntN(2))
		}
	}
	sc.minDelay = int64(1 + r.IntN(10))
	sc.maxDelay = sc.minDelay + int64(r.IntN(200))
	sc.loss = r.Float64() * 0.3
	sc.dup = r.Float64() * 0.2
	sc.heal = 2000 + int64(r.IntN(4000))
	for i := r.IntN(3); i > 0; i-- {
		from := int64(r.IntN(int(sc.heal)))
		p := partition{from: from, to: from + int64(r.IntN(2000)), side: make([]bool, n)}
		for j := range p.side {
			p.side[j] = r.IntN(2) == 0
		}
		sc.partitions = append(sc.partitions, p)
	}
	for i := r.IntN(3); i > 0; i-- {
		at := int64(r.IntN(int(sc.heal)))
		sc.crashes = append(sc.crashes, crash{node: r.IntN(n), at: at, back: at + 50 + int64(r.IntN(1500))})
	}
	sc.heights = 3
	sc.idleMode = r.IntN(2) == 0
	sc.stagger = 50
	if r.IntN(2) == 0 {
		sc.stagger += int64(r.IntN(350))
	}
	sc.newHeight = []int64{0, 50, 100, 200}[r.IntN(4)]
	sc.end = sc.heal + 30000
	return sc
}

type simulation struct {
	t        testing.TB
	seed     uint64
	sc       scenario
	rng      *rand.Rand
	nodes    []*simNode
	set      valset.Set
	q        eventQueue
	seq      uint64
	now      int64
	failures []string
}

func newSimulation(t testing.TB, seed uint64, sc scenario) *simulation {
	s := &simulation{t: t, seed: seed, sc: sc, rng: rand.New(rand.NewPCG(seed, 1))}
	for i := 0; i < sc.validators; i++ {
		var b [32]byte
		binary.BigEndian.PutUint64(b[:], seed)
		binary.BigEndian.PutUint64(b[8:], uint64(i))
		k, _ := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(b[:]))
		s.nodes = append(s.nodes, &simNode{idx: i, key: k, kind: sc.byz[i], alive: true, wake: -1})
		s.set = append(s.set, valset.Validator{Address: k.Public().Address(), PubKey: k.Public(), Power: sc.powers[i]})
	}
	s.set.Sort()
	for _, n := range s.nodes {
		s.boot(n, false)
	}
	for _, c := range sc.crashes {
		s.push(&event{at: c.at, node: c.node, kind: 1})
		s.push(&event{at: c.back, node: c.node, kind: 2})
	}
	return s
}

func (s *simulation) push(e *event) {
	s.seq++
	e.seq = s.seq
	heap.Push(&s.q, e)
}

func (s *simulation) cfg(n *simNode) Config {
	t := DefaultTimeouts()
	t.Stagger, t.NewHeight = s.sc.stagger, s.sc.newHeight
	return Config{ChainID: "sim", Signer: n.key, Timeouts: t, noLocking: s.sc.noLocking}
}

// boot starts a node fresh or, after a crash, from its disk: the committed chain is
// re-applied and the machine restored from the persisted state.
func (s *simulation) boot(n *simNode, restart bool) {
	n.app = &simApp{node: n, rng: rand.New(rand.NewPCG(s.seed, uint64(1000+n.idx)+uint64(s.now))), forged: n.kind == forger}
	for _, b := range n.disk.blocks {
		if err := n.app.apply(b); err != nil {
			s.fail("node %d: replaying its own chain: %v", n.idx, err)
		}
	}
	var app App = n.app
	if s.sc.idleMode {
		app = pendingApp{n.app}
	}
	n.m = New(s.cfg(n), app)
	height := uint64(len(n.disk.blocks)) + 1
	if restart && n.disk.state != nil && n.disk.state.Height == height {
		n.m.Restore(n.disk.state, s.set, s.now)
	} else {
		n.m.NewHeight(height, s.set, s.now)
	}
	s.drain(n)
}

func (s *simulation) fail(format string, args ...any) {
	s.failures = append(s.failures, fmt.Sprintf("t=%dms: ", s.now)+fmt.Sprintf(format, args...))
}

func (s *simulation) connected(a, b int) bool {
	for _, p := range s.sc.partitions {
		if s.now >= p.from && s.now < p.to && p.side[a] != p.side[b] {
			return false
		}
	}
	return true
}

// send schedules delivery of msg from node a to node b under the current faults.
func (s *simulation) send(a, b int, msg *Message) {
	healed := s.now >= s.sc.heal
	if !healed && (!s.connected(a, b) || s.rng.Float64() < s.sc.loss) {
		return
	}
	copies := 1
	if !healed && s.rng.Float64() < s.sc.dup {
		copies = 2
	}
	for c := 0; c < copies; c++ {
		d := s.sc.minDelay + s.rng.Int64N(s.sc.maxDelay-s.sc.minDelay+1)
		s.push(&event{at: s.now + d, node: b, msg: msg})
	}
}

// drain carries out a node's Ready: persist, then send, then apply decisions.
func (s *simulation) drain(n *simNode) {
	for {
		rd := n.m.Ready()
		if rd.Persist != nil {
			n.disk.state = rd.Persist
		}
		for i := range rd.Messages {
			msgs := s.byzantine(n, &rd.Messages[i])
			for j := range s.nodes {
				if j == n.idx {
					continue
				}
				msg := msgs[0]
				if len(msgs) > 1 && j%2 == 1 {
					msg = msgs[1]
				}
				s.send(n.idx, j, msg)
			}
		}
		if rd.Behind > 0 {
			s.sync(n)
		}
		for _, d := range rd.Decisions {
			if err := d.Cert.Verify("sim", s.set); err != nil {
				s.fail("node %d decided height %d with a bad certificate: %v", n.idx, d.Height, err)
			}
			if err := n.app.apply(d.Block); err != nil {
				s.fail("node %d: %v", n.idx, err)
			}
			n.disk.blocks = append(n.disk.blocks, d.Block)
			n.disk.certs = append(n.disk.certs, d.Cert)
			n.m.NewHeight(d.Height+1, s.set, s.now)
		}
		if rd.Persist == nil && len(rd.Messages) == 0 && len(rd.Decisions) == 0 {
			break
		}
	}
	s.schedule(n)
}

// sync lets a node that fell more than a height behind copy certified blocks from
// the most advanced live peer, checking each certificate, as block sync does.
func (s *simulation) sync(n *simNode) {
	var best *simNode
	for _, p := range s.nodes {
		if p.alive && p != n && (best == nil || len(p.disk.blocks) > len(best.disk.blocks)) {
			best = p
		}
	}
	if best == nil {
		return
	}
	for h := len(n.disk.blocks); h < len(best.disk.blocks); h++ {
		c := best.disk.certs[h]
		if err := c.Verify("sim", s.set); err != nil {
			s.fail("sync: bad certificate at height %d: %v", h+1, err)
			return
		}
		if _, err := n.app.Validate(uint64(h+1), best.disk.blocks[h]); err != nil {
			s.fail("sync: node %d refuses certified block %d: %v", n.idx, h+1, err)
			return
		}
		_ = n.app.apply(best.disk.blocks[h])
		n.disk.blocks = append(n.disk.blocks, best.disk.blocks[h])
		n.disk.certs = append(n.disk.certs, c)
	}
	n.m.NewHeight(uint64(len(n.disk.blocks))+1, s.set, s.now)
}

// byzantine returns what a node really sends for msg: honest nodes send it; an
// equivocator sends a conflicting signed twin to half of its peers.
func (s *simulation) byzantine(n *simNode, msg *Message) []*Message {
	if n.kind != equivocator || s.rng.IntN(2) == 0 {
		return []*Message{msg}
	}
	switch {
	case msg.Vote != nil:
		v := *msg.Vote
		if v.IsNil() {
			v.BlockID = hash.Sum("plug/sim-bogus", []byte{byte(s.rng.IntN(256))})
		} else {
			v.BlockID = hash.Hash{}
		}
		v.Signature, _ = n.key.Sign(v.SignBytes())
		return []*Message{msg, {Vote: &v}}
	case msg.Proposal != nil:
		p := *msg.Proposal
		b := &simBlock{Height: p.Height, Parent: n.app.parent(), Payload: s.rng.Uint64()}
		p.Block, p.BlockID, p.POLRound = encoding.MustMarshal(b), b.id(), -1
		p.Signature, _ = n.key.Sign(p.SignBytes())
		return []*Message{msg, {Proposal: &p}}
	}
	return []*Message{msg}
}

func (s *simulation) schedule(n *simNode) {
	at := n.m.NextDeadline()
	if at <= s.now {
		at = s.now + 1
	}
	if n.wake >= 0 && n.wake <= at {
		return
	}
	n.wake = at
	s.push(&event{at: at, node: n.idx})
}

func (s *simulation) run() {
	for s.q.Len() > 0 {
		e := heap.Pop(&s.q).(*event)
		if e.at > s.sc.end {
			break
		}
		s.now = e.at
		n := s.nodes[e.node]
		switch e.kind {
		case 1:
			n.alive, n.m = false, nil
			continue
		case 2:
			n.alive = true
			n.wake = -1
			s.boot(n, true)
			continue
		}
		if !n.alive {
			continue
		}
		if trace {
			s.trace(n, e)
		}
		if e.msg == nil {
			if n.wake != e.at {
				continue // superseded tick
			}
			n.wake = -1
			n.m.Tick(s.now)
		} else {
			_ = n.m.Receive(e.msg)
		}
		s.drain(n)
		if s.done() {
			break
		}
	}
	s.check()
}

var trace = os.Getenv("PLUG_SIM_TRACE") != ""

func (s *simulation) trace(n *simNode, e *event) {
	what := "tick"
	switch {
	case e.msg == nil:
	case e.msg.Vote != nil:
		v := e.msg.Vote
		what = fmt.Sprintf("%s h%d r%d %s from %s", v.Type, v.Height, v.Round, v.BlockID.Short(), v.Validator.String()[:4])
	case e.msg.Proposal != nil:
		p := e.msg.Proposal
		what = fmt.Sprintf("proposal h%d r%d pol%d %s from %s", p.Height, p.Round, p.POLRound, p.BlockID.Short(), p.Proposer.String()[:4])
	case e.msg.Decided != nil:
		what = fmt.Sprintf("decided h%d", e.msg.Decided.Cert.Height)
	}
	lr, lid := n.m.Locked()
	fmt.Printf("%6d n%d(%s h%d r%d s%d lock %d/%s) <- %s\n", s.now, n.idx, s.set[s.set.Find(n.key.Public().Address())].Address.String()[:4], n.m.Height(), n.m.Round(), n.m.Step(), lr, lid.Short(), what)
}

func (s *simulation) done() bool {
	if s.now < s.sc.heal {
		return false
	}
	for _, n := range s.nodes {
		if n.kind == honest && uint64(len(n.app.ids)) < s.sc.heights+s.heightAtHeal() {
			return false
		}
	}
	return true
}

func (s *simulation) heightAtHeal() uint64 { return 0 }

// check verifies the invariants over every honest node's committed chain.
func (s *simulation) check() {
	var ref *simNode
	for _, n := range s.nodes {
		if n.kind != honest {
			continue
		}
		if ref == nil || len(n.app.ids) > len(ref.app.ids) {
			ref = n
		}
	}
	for _, n := range s.nodes {
		if n.kind != honest {
			continue
		}
		for h := range n.app.ids {
			if n.app.ids[h] != ref.app.ids[h] {
				s.fail("SAFETY: nodes %d and %d committed different blocks at height %d", n.idx, ref.idx, h+1)
				break
			}
			if n.app.roots[h] != ref.app.roots[h] {
				s.fail("nodes %d and %d have different state roots at height %d", n.idx, ref.idx, h+1)
				break
			}
		}
		if uint64(len(n.app.ids)) < s.sc.heights {
			s.fail("LIVENESS: node %d reached height %d of %d by t=%dms (healed at %dms)", n.idx, len(n.app.ids), s.sc.heights, s.now, s.sc.heal)
		}
	}
}

func runSeed(t testing.TB, seed uint64, mutate func(*scenario)) *simulation {
	sc := drawScenario(seed)
	if mutate != nil {
		mutate(&sc)
	}
	s := newSimulation(t, seed, sc)
	s.run()
	return s
}

func seeds(t *testing.T) []uint64 {
	if *seedFlag != 0 {
		return []uint64{*seedFlag}
	}
	if v := os.Getenv("PLUG_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("PLUG_SEED: %v", err)
		}
		return []uint64{n}
	}
	n := *seedsFlag
	if n == 0 {
		n = 3000
		if testing.Short() {
			n = 100
		}
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i + 1)
	}
	return out
}

// TestSimulation runs the protocol on many seeded schedules and checks the
// invariants. A failing seed is printed; replay it with
// go test ./chain/consensus -run TestSimulation -seed N -v.
func TestSimulation(t *testing.T) {
	for _, seed := range seeds(t) {
		s := runSeed(t, seed, nil)
		if len(s.failures) > 0 {
			t.Errorf("seed %d (%d validators, byzantine %v, loss %.2f, heal at %dms) failed; replay with: go test ./chain/consensus -run TestSimulation -seed %d -v\n  %v",
				seed, s.sc.validators, s.sc.byz, s.sc.loss, s.sc.heal, seed, s.failures)
			if !testing.Verbose() && len(s.failures) > 0 {
				continue
			}
		}
	}
}

// TestSimulationReplaysExactly runs one seed twice and requires identical histories.
func TestSimulationReplaysExactly(t *testing.T) {
	a, b := runSeed(t, 77, nil), runSeed(t, 77, nil)
	if a.now != b.now || a.seq != b.seq {
		t.Fatalf("seed 77 diverged: end %d/%d, events %d/%d", a.now, b.now, a.seq, b.seq)
	}
	for i := range a.nodes {
		if fmt.Sprint(a.nodes[i].app.roots) != fmt.Sprint(b.nodes[i].app.roots) {
			t.Fatalf("node %d: different chains on replay", i)
		}
	}
}

// TestSimulationCatchesBrokenLocking turns locking off and expects the checker to
// find a safety violation on some seed: the simulator can fail.
func TestSimulationCatchesBrokenLocking(t *testing.T) {
	for seed := uint64(1); seed <= 3000; seed++ {
		s := runSeed(t, seed, func(sc *scenario) { sc.noLocking = true })
		for _, f := range s.failures {
			if bytes.Contains([]byte(f), []byte("SAFETY")) {
				t.Logf("seed %d: %s", seed, f)
				return
			}
		}
	}
	t.Fatal("no seed broke safety with locking turned off: the simulator is too gentle")
}
