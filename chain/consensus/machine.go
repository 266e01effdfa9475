// Package consensus is PLUG's leaderless, weighted two-phase commit as a pure,
// deterministic state machine, in the manner of etcd's raft library: events go in
// (messages, ticks carrying the time), and what to persist, send and commit comes out
// of Ready. There are no goroutines, clocks or sockets inside; the node and the
// simulator drive it, and must write Ready.Persist to disk before sending any of
// Ready.Messages.
//
// The protocol is Tendermint's (Buchman, Kwon, Milosevic, 2018) with its rotating
// proposer replaced by a deterministic priority: in every round any validator may
// propose, ranked by a hash of (chain, height, round, address) scaled by voting power;
// validator k waits k stagger intervals before proposing, and only if it saw no valid
// proposal ranked better, so a healthy network sees one proposal per round and the
// top-ranked crashed validator costs one stagger, not a round. See
// docs/consensus.md for the rules and the safety argument.
package consensus

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/valset"
)

// Step is where a validator is within a round.
type Step uint8

// Steps of a round.
const (
	StepPropose   Step = 1 // waiting for proposals
	StepPreCommit Step = 2 // pre-committed; waiting for a pre-commit quorum
	StepCommit    Step = 3 // committed (or committed nil); waiting for a commit quorum
)

// App is the chain the machine agrees for. Both calls must be deterministic.
type App interface {
	// Propose builds a new block for height and returns its encoding and ID.
	Propose(height uint64, round uint32) (block []byte, id hash.Hash, err error)
	// Validate checks an encoded block proposed for height and returns its ID.
	Validate(height uint64, block []byte) (id hash.Hash, err error)
}

// Timeouts in milliseconds. Round r waits Base + r*Delta for each timeout.
type Timeouts struct {
	// Stagger is the wait between two proposer ranks. It should exceed the time
	// to build, send and check a full block: a better-ranked proposal still being
	// built when the next rank's turn comes makes both propose, and every
	// validator then executes both candidates, which slows the height further.
	Stagger int64
	// Propose is how long a round waits for an acceptable proposal beyond the
	// staggering of every rank, before pre-committing nil.
	Propose int64
	// PreCommit is how long to wait, after seeing a quorum of pre-commits for
	// different blocks, before committing nil.
	PreCommit int64
	// Commit is how long to wait, after a quorum of commits with no decision, before
	// moving to the next round.
	Commit int64
	// Delta is added to every timeout per round, so rounds lengthen until the
	// network's delays fit.
	Delta int64
	// Rebroadcast is how often the validator re-sends its votes of the current round,
	// which keeps the protocol live over lossy links.
	Rebroadcast int64
	// NewHeight is the pause after a decision before the next height's first round
	// starts: it lets transactions gather into the next block. An App that is a
	// Backlogger skips it while a full block is waiting.
	NewHeight int64
	// EmptyBlocks, when positive and the App reports pending transactions (Pender),
	// is how long an idle validator waits for transactions before starting a height
	// anyway: an idle chain makes one block per EmptyBlocks ms instead of one per
	// NewHeight, while a transaction still starts the height at once. Any message of
	// the height from a peer also starts it.
	EmptyBlocks int64
}

// Pender is implemented by an App that can tell whether transactions are waiting,
// so that idle validators need not produce empty blocks at full speed.
type Pender interface {
	Pending() bool
}

// Backlogger is implemented by an App that can tell when a full block of
// transactions is already waiting. The NewHeight pause is there to let a block
// fill; with a full block waiting it only adds latency, so the height starts at
// once.
type Backlogger interface {
	Backlog() bool
}

// DefaultTimeouts suit validators on one LAN or one machine.
func DefaultTimeouts() Timeouts {
	return Timeouts{Stagger: 200, Propose: 300, PreCommit: 200, Commit: 200, Delta: 100, Rebroadcast: 500, NewHeight: 50, EmptyBlocks: 1000}
}

// Config configures a machine.
type Config struct {
	ChainID string
	// Signer is the validator's key; nil makes a follower that votes never.
	Signer   crypto.PrivateKey
	Timeouts Timeouts
	// MaxFuture bounds the messages buffered for the next height.
	MaxFuture int

	// noLocking breaks the protocol on purpose, so the simulator's test can show
	// that its checker catches a safety violation. Never set outside that test.
	noLocking bool
}

// State is what a validator must keep across a crash to stay safe: its position, its
// lock and the votes and proposals it signed at this height. After a restart it
// re-sends those instead of signing anything that conflicts with them.
type State struct {
	Height      uint64     `cbor:"1,keyasint"`
	Round       uint32     `cbor:"2,keyasint"`
	Step        Step       `cbor:"3,keyasint"`
	LockedRound int32      `cbor:"4,keyasint"`
	LockedID    hash.Hash  `cbor:"5,keyasint"`
	LockedBlock []byte     `cbor:"6,keyasint"`
	ValidRound  int32      `cbor:"7,keyasint"`
	ValidID     hash.Hash  `cbor:"8,keyasint"`
	ValidBlock  []byte     `cbor:"9,keyasint"`
	Votes       []Vote     `cbor:"10,keyasint"`
	Proposals   []Proposal `cbor:"11,keyasint"`
	// ValidPOL is the pre-commit quorum for ValidID at ValidRound: after a
	// restart it is the proof-of-lock a re-proposal of ValidBlock must carry.
	// Without it, validators that restart locked on different blocks (a whole
	// chain down and back) could never convince each other, and the height
	// would never decide.
	ValidPOL []Vote `cbor:"12,keyasint,omitempty"`
}

// Decision is a final block.
type Decision struct {
	Height uint64
	Block  []byte
	Cert   Certificate
}

// Evidence is proof that a validator signed two conflicting messages.
type Evidence struct {
	VoteA, VoteB         *Vote
	ProposalA, ProposalB *Proposal
}

// Ready is what the driver must do after an event, in this order: persist, send,
// then apply decisions.
type Ready struct {
	// Persist, when set, must be durable before any of Messages is sent.
	Persist *State
	// Messages to broadcast to every peer.
	Messages []Message
	// Decisions are final blocks, in height order. After applying one the driver
	// calls NewHeight.
	Decisions []Decision
	// Evidence of equivocation seen.
	Evidence []Evidence
	// Behind is the highest height a peer spoke of that is above ours + 1: the
	// driver should fetch the missing blocks and certificates.
	Behind uint64
}

type timerKind uint8

const (
	timeoutPropose timerKind = iota
	timeoutPreCommit
	timeoutCommit
)

type timer struct {
	kind  timerKind
	round uint32
	at    int64
}

// roundVotes tallies one round's votes. A validator counts once towards "any" and
// once towards each block it signed for: an equivocator's second vote is evidence,
// and still a valid signature for that block, so a proof-of-lock quorum that holds it
// is a real quorum. Two blocks can then both reach a quorum in one round only if more
// than a third of the power equivocates, which the protocol assumes away.
type roundVotes struct {
	votes   [3]map[crypto.Address]*Vote               // first vote per validator
	byBlock [3]map[hash.Hash]map[crypto.Address]*Vote // every counted vote, by block
	power   [3]map[hash.Hash]uint64
	any     [3]uint64
}

// maxVotesPerValidator bounds what an equivocator can make a node store per round
// and vote type.
const maxVotesPerValidator = 2

func newRoundVotes() *roundVotes {
	rv := &roundVotes{}
	for t := 1; t < 3; t++ {
		rv.votes[t] = map[crypto.Address]*Vote{}
		rv.byBlock[t] = map[hash.Hash]map[crypto.Address]*Vote{}
		rv.power[t] = map[hash.Hash]uint64{}
	}
	return rv
}

// Machine is one node's view of consensus at its current height.
type Machine struct {
	cfg  Config
	app  App
	self crypto.Address

	height     uint64
	set        valset.Set
	total      uint64
	round      uint32
	step       Step
	roundStart int64
	now        int64

	lockedRound, validRound int32
	lockedID, validID       hash.Hash

	blocks    map[hash.Hash][]byte // blocks of this height's valid proposals
	invalid   map[hash.Hash]bool
	proposals map[uint32][]*Proposal
	votes     map[uint32]*roundVotes
	sent      map[uint64]*Vote // own votes by round<<8|type
	proposed  map[uint32]*Proposal
	timers    []timer
	lockDone  map[uint32]bool
	commitTO  map[uint32]bool
	preTO     map[uint32]bool
	decided   bool
	lastCast  int64
	idle      bool  // waiting for transactions before round 0 (EmptyBlocks)
	idleUntil int64 // when an idle height starts anyway

	future      []Message
	futureAt    int64 // when a message of the next height first arrived undecided; -1: none
	lastDecided *Decided
	helped      int64

	out   Ready
	dirty bool
}

// New returns a machine at height with validator set set, at time now (ms). For a
// validator restarting after a crash, pass its persisted State to Restore instead of
// calling Start.
func New(cfg Config, app App) *Machine {
	if cfg.Timeouts == (Timeouts{}) {
		cfg.Timeouts = DefaultTimeouts()
	}
	if cfg.MaxFuture == 0 {
		cfg.MaxFuture = 4096
	}
	m := &Machine{cfg: cfg, app: app, futureAt: -1}
	if cfg.Signer != nil {
		m.self = cfg.Signer.Public().Address()
	}
	return m
}

// Height returns the height being agreed.
func (m *Machine) Height() uint64 { return m.height }

// Round returns the current round.
func (m *Machine) Round() uint32 { return m.round }

// Step returns the current step.
func (m *Machine) Step() Step { return m.step }

// Locked returns the lock: the round and block the validator committed to, or -1.
func (m *Machine) Locked() (int32, hash.Hash) { return m.lockedRound, m.lockedID }

// NewHeight starts agreeing on height with validator set set at time now. The driver
// calls it at start-up and after applying each Decision.
func (m *Machine) NewHeight(height uint64, set valset.Set, now int64) {
	m.reset(height, set, now)
	if _, ok := m.app.(Pender); ok && m.cfg.Timeouts.EmptyBlocks > 0 {
		m.idle, m.idleUntil = true, m.now+max(m.cfg.Timeouts.NewHeight, m.cfg.Timeouts.EmptyBlocks)
		m.step, m.round, m.roundStart = StepPropose, 0, m.now
	} else {
		m.startRound(0)
		m.roundStart += m.cfg.Timeouts.NewHeight
		m.timers[0].at += m.cfg.Timeouts.NewHeight
	}
	m.replayFuture()
	m.progress()
}

// wake ends the idle wait of a height and starts its first round.
func (m *Machine) wake() {
	m.idle = false
	m.startRound(0)
}

// reset clears the per-height state without acting on anything.
func (m *Machine) reset(height uint64, set valset.Set, now int64) {
	m.height, m.set, m.total = height, set, set.TotalPower()
	m.lockedRound, m.validRound = -1, -1
	m.lockedID, m.validID = hash.Hash{}, hash.Hash{}
	m.blocks, m.invalid = map[hash.Hash][]byte{}, map[hash.Hash]bool{}
	m.proposals, m.votes = map[uint32][]*Proposal{}, map[uint32]*roundVotes{}
	m.sent, m.proposed = map[uint64]*Vote{}, map[uint32]*Proposal{}
	m.lockDone, m.commitTO, m.preTO = map[uint32]bool{}, map[uint32]bool{}, map[uint32]bool{}
	m.timers = nil
	m.decided, m.idle = false, false
	m.futureAt = -1
	m.now = max(m.now, now)
}

// Restore resumes a validator from its persisted state after a crash: same height,
// round, lock and signed messages, which it re-sends rather than contradict.
func (m *Machine) Restore(st *State, set valset.Set, now int64) {
	// Nothing may be signed before the persisted votes and lock are back in place.
	m.reset(st.Height, set, now)
	m.lockedRound, m.lockedID = st.LockedRound, st.LockedID
	m.validRound, m.validID = st.ValidRound, st.ValidID
	if st.LockedBlock != nil {
		m.blocks[st.LockedID] = st.LockedBlock
	}
	if st.ValidBlock != nil {
		m.blocks[st.ValidID] = st.ValidBlock
	}
	for i := range st.Votes {
		v := st.Votes[i]
		m.sent[voteKey(v.Round, v.Type)] = &v
	}
	for i := range st.Proposals {
		p := st.Proposals[i]
		m.proposed[p.Round] = &p
		if p.Block != nil {
			m.blocks[p.BlockID] = p.Block
		}
	}
	for i := range st.ValidPOL {
		// Checked when first received; re-checked here all the same, since a
		// vote that does not verify must never count.
		if v := st.ValidPOL[i]; v.Type == PreCommit && v.Height == st.Height && int32(v.Round) == st.ValidRound && v.BlockID == st.ValidID {
			if _, err := checkVote(m.cfg.ChainID, m.set, &v); err == nil {
				m.record(&v)
			}
		}
	}
	m.startRound(st.Round)
	m.step = max(st.Step, StepPropose)
	for _, k := range sortedKeys(m.sent) {
		v := m.sent[k]
		if v.Round == m.round {
			m.step = max(m.step, stepAfter(v.Type))
		}
		m.record(v)
	}
	st2 := m.persistState()
	for i := range st2.Proposals {
		m.emit(Message{Proposal: &st2.Proposals[i]})
	}
	for i := range st2.Votes {
		m.emit(Message{Vote: &st2.Votes[i]})
	}
	m.replayFuture()
	m.progress()
}

func stepAfter(t VoteType) Step {
	if t == PreCommit {
		return StepPreCommit
	}
	return StepCommit
}

func voteKey(round uint32, t VoteType) uint64 { return uint64(round)<<8 | uint64(t) }

// Tick advances the machine's clock to now (ms) and fires due timeouts.
func (m *Machine) Tick(now int64) {
	if now > m.now {
		m.now = now
	}
	if m.decided {
		return
	}
	for {
		fired := false
		for i, t := range m.timers {
			if t.at <= m.now {
				m.timers = append(m.timers[:i], m.timers[i+1:]...)
				m.onTimeout(t)
				fired = true
				break
			}
		}
		if !fired {
			break
		}
	}
	if m.cfg.Signer != nil && m.now-m.lastCast >= m.cfg.Timeouts.Rebroadcast {
		m.rebroadcast()
	}
	m.checkLag()
	m.progress()
}

// lagAfter is how long peers may speak of the next height, while this machine
// has not decided its own, before it asks the driver to fetch the block: they
// decided it, and a decision can be lost for good — the peers that hold it may
// have restarted since (a restarted machine has no decision to hand out) and
// the proposer publishes it once.
func (m *Machine) lagAfter() int64 { return 2 * m.cfg.Timeouts.Rebroadcast }

// checkLag reports Behind for the next height once peers have spoken of it for
// lagAfter without this machine deciding; then again every lagAfter.
func (m *Machine) checkLag() {
	if !m.decided && m.futureAt >= 0 && m.now-m.futureAt >= m.lagAfter() {
		m.out.Behind = max(m.out.Behind, m.height+1)
		m.futureAt = m.now
	}
}

// NextDeadline returns the earliest time at which Tick has work to do, so a driver
// (or the simulator) can sleep until then.
func (m *Machine) NextDeadline() int64 {
	next := m.lastCast + m.cfg.Timeouts.Rebroadcast
	if m.cfg.Signer == nil {
		// A follower casts nothing, so lastCast stays put: without this its
		// deadline would stay in the past and a driver sleeping until it spin.
		next = math.MaxInt64
	}
	if m.decided {
		return next
	}
	if m.futureAt >= 0 {
		next = min(next, m.futureAt+m.lagAfter())
	}
	if m.idle {
		return min(next, m.idleUntil)
	}
	for _, t := range m.timers {
		next = min(next, t.at)
	}
	if m.step == StepPropose {
		// Staggered proposing and voting wake up at rank boundaries.
		st := max(1, m.stagger())
		d := m.roundStart
		if m.now >= m.roundStart {
			d += st * (1 + (m.now-m.roundStart)/st)
		}
		next = min(next, d)
	}
	return next
}

// Ready returns and clears what the driver must do.
func (m *Machine) Ready() Ready {
	r := m.out
	if m.dirty {
		r.Persist = m.persistState()
	}
	m.out, m.dirty = Ready{}, false
	return r
}

func (m *Machine) persistState() *State {
	st := &State{Height: m.height, Round: m.round, Step: m.step,
		LockedRound: m.lockedRound, LockedID: m.lockedID, LockedBlock: m.blocks[m.lockedID],
		ValidRound: m.validRound, ValidID: m.validID, ValidBlock: m.blocks[m.validID]}
	for _, k := range sortedKeys(m.sent) {
		st.Votes = append(st.Votes, *m.sent[k])
	}
	for _, r := range sortedKeys(m.proposed) {
		st.Proposals = append(st.Proposals, *m.proposed[r])
	}
	if m.validRound >= 0 {
		if rv := m.votes[uint32(m.validRound)]; rv != nil {
			voters := rv.byBlock[PreCommit][m.validID]
			for _, k := range sortedAddrs(voters) {
				st.ValidPOL = append(st.ValidPOL, *voters[k])
			}
		}
	}
	return st
}

func (m *Machine) emit(msg Message) { m.out.Messages = append(m.out.Messages, msg) }

// Receive feeds one message from a peer. Invalid messages are dropped and their
// error returned (the driver may penalize the peer); nothing changes.
func (m *Machine) Receive(msg *Message) error {
	switch {
	case msg.Vote != nil:
		return m.onVote(msg.Vote)
	case msg.Proposal != nil:
		return m.onProposal(msg.Proposal)
	case msg.Decided != nil:
		return m.onDecided(msg.Decided)
	}
	return fmt.Errorf("%w: empty message", ErrBadMessage)
}

func (m *Machine) futureOrPast(height uint64, msg Message) bool {
	switch {
	case height == m.height && !m.decided:
		return false
	case height == m.height+1 || (height == m.height && m.decided):
		if len(m.future) < m.cfg.MaxFuture {
			m.future = append(m.future, msg)
		}
		if height == m.height+1 && !m.decided && m.futureAt < 0 {
			m.futureAt = m.now
		}
	case height > m.height+1:
		m.out.Behind = max(m.out.Behind, height)
	case height+1 == m.height && m.lastDecided != nil && m.lastDecided.Cert.Height == height && m.now-m.helped >= m.cfg.Timeouts.Rebroadcast:
		// A peer still works on the height we just finished: hand it the decision
		// (not an older one: after a sync, lastDecided is stale).
		m.helped = m.now
		m.emit(Message{Decided: m.lastDecided})
	}
	return true
}

func (m *Machine) replayFuture() {
	f := m.future
	m.future = nil
	for i := range f {
		_ = m.Receive(&f[i])
	}
}

func (m *Machine) onVote(v *Vote) error {
	if m.futureOrPast(v.Height, Message{Vote: v}) {
		return nil
	}
	power, err := checkVote(m.cfg.ChainID, m.set, v)
	if err != nil {
		return err
	}
	_ = power
	m.record(v)
	m.progress()
	return nil
}

// record adds a verified vote to the tallies, keeping the first of conflicting ones
// and reporting the second as evidence.
func (m *Machine) record(v *Vote) {
	rv := m.votes[v.Round]
	if rv == nil {
		rv = newRoundVotes()
		m.votes[v.Round] = rv
	}
	i := m.set.Find(v.Validator)
	if i < 0 {
		return
	}
	p := m.set[i].Power
	if prev, ok := rv.votes[v.Type][v.Validator]; ok {
		if prev.BlockID == v.BlockID {
			return
		}
		if _, counted := rv.byBlock[v.Type][v.BlockID][v.Validator]; counted {
			return
		}
		n := 0
		for _, voters := range rv.byBlock[v.Type] {
			if _, ok := voters[v.Validator]; ok {
				n++
			}
		}
		m.out.Evidence = append(m.out.Evidence, Evidence{VoteA: prev, VoteB: v})
		if n >= maxVotesPerValidator {
			return
		}
	} else {
		rv.votes[v.Type][v.Validator] = v
		rv.any[v.Type] += p
	}
	if rv.byBlock[v.Type][v.BlockID] == nil {
		rv.byBlock[v.Type][v.BlockID] = map[crypto.Address]*Vote{}
	}
	rv.byBlock[v.Type][v.BlockID][v.Validator] = v
	rv.power[v.Type][v.BlockID] += p
}

func (m *Machine) onProposal(p *Proposal) error {
	if m.futureOrPast(p.Height, Message{Proposal: p}) {
		return nil
	}
	if p.ChainID != m.cfg.ChainID || p.POLRound < -1 || (p.POLRound >= 0 && uint32(p.POLRound) >= p.Round) {
		return fmt.Errorf("%w: proposal fields", ErrBadMessage)
	}
	i := m.set.Find(p.Proposer)
	if i < 0 {
		return fmt.Errorf("%w: proposer %s", ErrNotValidator, p.Proposer)
	}
	if err := crypto.Verify(m.set[i].PubKey, p.SignBytes(), p.Signature); err != nil {
		return fmt.Errorf("%w: proposal of %s: %v", ErrBadSignature, p.Proposer, err)
	}
	for _, q := range m.proposals[p.Round] {
		if q.Proposer == p.Proposer {
			if q.BlockID != p.BlockID {
				m.out.Evidence = append(m.out.Evidence, Evidence{ProposalA: q, ProposalB: p})
			}
			return nil
		}
	}
	if len(p.POL) > len(m.set) {
		return fmt.Errorf("%w: %d POL votes for %d validators", ErrBadMessage, len(p.POL), len(m.set))
	}
	for i := range p.POL {
		v := &p.POL[i]
		if v.Type != PreCommit || v.Height != m.height || int32(v.Round) != p.POLRound || v.BlockID != p.BlockID {
			return fmt.Errorf("%w: POL vote %d does not support the proposal", ErrBadMessage, i)
		}
		if _, err := checkVote(m.cfg.ChainID, m.set, v); err != nil {
			return fmt.Errorf("POL vote %d: %w", i, err)
		}
	}
	for i := range p.POL {
		m.record(&p.POL[i])
	}
	if m.invalid[p.BlockID] {
		return fmt.Errorf("%w: block %s is invalid", ErrBadMessage, p.BlockID.Short())
	}
	if _, known := m.blocks[p.BlockID]; !known {
		id, err := m.app.Validate(m.height, p.Block)
		if err != nil || id != p.BlockID {
			m.invalid[p.BlockID] = true
			if err == nil {
				err = fmt.Errorf("block id %s, proposal says %s", id.Short(), p.BlockID.Short())
			}
			return fmt.Errorf("%w: invalid block from %s: %v", ErrBadMessage, p.Proposer, err)
		}
		m.blocks[p.BlockID] = p.Block
	}
	m.proposals[p.Round] = append(m.proposals[p.Round], p)
	m.progress()
	return nil
}

func (m *Machine) onDecided(d *Decided) error {
	if d.Cert.Height != m.height || m.decided {
		if d.Cert.Height > m.height+1 {
			m.out.Behind = max(m.out.Behind, d.Cert.Height)
		}
		return nil
	}
	if err := d.Cert.Verify(m.cfg.ChainID, m.set); err != nil {
		return err
	}
	if _, known := m.blocks[d.Cert.BlockID]; !known {
		id, err := m.app.Validate(m.height, d.Block)
		if err != nil || id != d.Cert.BlockID {
			return fmt.Errorf("%w: decided block does not match its certificate", ErrBadMessage)
		}
		m.blocks[id] = d.Block
	}
	m.decide(d.Cert, m.blocks[d.Cert.BlockID])
	return nil
}

// rank returns validator addr's proposer rank at the current height and round
// (0 = first), ordering by a hash of (chain, height, round, address) divided by
// voting power, so that powerful validators tend to rank first.
func (m *Machine) rank(addr crypto.Address) int {
	score := func(v valset.Validator) uint64 {
		var hr [12]byte
		binary.BigEndian.PutUint64(hr[:8], m.height)
		binary.BigEndian.PutUint32(hr[8:], m.round)
		h := hash.Sum("plug/proposer-rank", []byte(m.cfg.ChainID), hr[:], v.Address[:])
		return binary.BigEndian.Uint64(h[:8]) / v.Power
	}
	i := m.set.Find(addr)
	if i < 0 {
		return len(m.set)
	}
	mine, r := score(m.set[i]), 0
	for j, v := range m.set {
		s := score(v)
		if s < mine || (s == mine && j < i) {
			r++
		}
	}
	return r
}

func (m *Machine) timeout(base int64, r uint32) int64 { return base + int64(r)*m.cfg.Timeouts.Delta }

// stagger is the wait between proposer ranks in the current round. It grows with the
// round like the timeouts do, so that once it exceeds the network's delay a better-
// ranked proposal always arrives before a worse-ranked validator would propose.
func (m *Machine) stagger() int64 {
	return m.cfg.Timeouts.Stagger + int64(m.round)*m.cfg.Timeouts.Delta/2
}

func (m *Machine) startRound(r uint32) {
	m.round, m.step, m.roundStart = r, StepPropose, m.now
	m.dirty = true
	m.schedule(timeoutPropose, r, m.now+m.stagger()*int64(len(m.set))+m.timeout(m.cfg.Timeouts.Propose, r))
}

func (m *Machine) schedule(k timerKind, r uint32, at int64) {
	m.timers = append(m.timers, timer{kind: k, round: r, at: at})
}

func (m *Machine) onTimeout(t timer) {
	if t.round != m.round {
		return
	}
	switch t.kind {
	case timeoutPropose:
		if m.step == StepPropose {
			m.vote(PreCommit, hash.Hash{})
			m.step = StepPreCommit
		}
	case timeoutPreCommit:
		if m.step == StepPreCommit {
			m.vote(Commit, hash.Hash{})
			m.step = StepCommit
		}
	case timeoutCommit:
		m.startRound(m.round + 1)
	}
}

// vote signs and sends a vote, unless this validator already signed one of that type
// in this round (before a crash, say): then it re-sends that one and nothing else.
func (m *Machine) vote(t VoteType, id hash.Hash) {
	if m.cfg.Signer == nil {
		return
	}
	if prev, ok := m.sent[voteKey(m.round, t)]; ok {
		m.emit(Message{Vote: prev})
		return
	}
	v := &Vote{Type: t, ChainID: m.cfg.ChainID, Height: m.height, Round: m.round, BlockID: id, Validator: m.self}
	sig, err := m.cfg.Signer.Sign(v.SignBytes())
	if err != nil {
		return
	}
	v.Signature = sig
	m.sent[voteKey(m.round, t)] = v
	m.dirty = true
	m.lastCast = m.now
	m.record(v)
	m.emit(Message{Vote: v})
}

func (m *Machine) rebroadcast() {
	m.lastCast = m.now
	if p := m.proposed[m.round]; p != nil {
		m.emit(Message{Proposal: p})
	}
	// Votes of the previous round too: a peer still in it may need them to reach the
	// quorum that times it out into this one.
	for _, r := range []uint32{m.round - 1, m.round} {
		if r > m.round {
			continue // no round before 0
		}
		for _, t := range []VoteType{PreCommit, Commit} {
			if v := m.sent[voteKey(r, t)]; v != nil {
				m.emit(Message{Vote: v})
			}
		}
	}
	// A locked validator also re-sends the quorum it locked on, so that peers can
	// accept a re-proposal of the locked block.
	if m.lockedRound >= 0 && uint32(m.lockedRound) != m.round {
		if v := m.sent[voteKey(uint32(m.lockedRound), PreCommit)]; v != nil {
			m.emit(Message{Vote: v})
		}
	}
}

// progress applies every rule whose condition holds, until none does.
func (m *Machine) progress() {
	for !m.decided && m.step1() {
	}
}

func (m *Machine) tally(r uint32, t VoteType, id hash.Hash) uint64 {
	if rv := m.votes[r]; rv != nil {
		return rv.power[t][id]
	}
	return 0
}

func (m *Machine) anyTally(r uint32, t VoteType) uint64 {
	if rv := m.votes[r]; rv != nil {
		return rv.any[t]
	}
	return 0
}

// step1 applies the first rule that holds and reports whether one did.
func (m *Machine) step1() bool {
	if m.idle {
		p, _ := m.app.(Pender)
		bl, _ := m.app.(Backlogger)
		if m.now >= m.idleUntil || (m.now >= m.roundStart+m.cfg.Timeouts.NewHeight && p.Pending()) || (bl != nil && bl.Backlog()) ||
			len(m.votes) > 0 || len(m.proposals) > 0 {
			m.wake()
			return true
		}
		return false
	}
	// Map iteration order is random: rounds are visited in order, and within one
	// round at most one block can reach a quorum (each validator counts once), so
	// the outcome is deterministic.
	rounds := sortedKeys(m.votes)
	// Decide: a commit quorum for a block we hold, in any round.
	for _, r := range rounds {
		for _, id := range quorumBlocks(m.votes[r].power[Commit], m.total) {
			if b, ok := m.blocks[id]; ok {
				m.decide(m.certificate(r, id), b)
				return true
			}
		}
	}
	// Skip ahead: more than a third of the power is in a later round; go to the
	// latest such round.
	for i := len(rounds) - 1; i >= 0; i-- {
		if r := rounds[i]; r > m.round && OneThird(m.roundPower(r), m.total) {
			m.startRound(r)
			return true
		}
	}
	r := m.round
	switch m.step {
	case StepPropose:
		if m.maybePropose() {
			return true
		}
		if p := m.bestProposal(); p != nil && m.now >= m.roundStart+int64(m.rank(p.Proposer))*m.stagger() {
			id := hash.Hash{}
			if m.acceptable(p) {
				id = p.BlockID
			}
			m.vote(PreCommit, id)
			m.step = StepPreCommit
			m.dirty = true
			return true
		}
	case StepPreCommit:
		if Quorum(m.tally(r, PreCommit, hash.Hash{}), m.total) {
			m.vote(Commit, hash.Hash{})
			m.step = StepCommit
			m.dirty = true
			return true
		}
		if !m.preTO[r] && Quorum(m.anyTally(r, PreCommit), m.total) {
			m.preTO[r] = true
			m.schedule(timeoutPreCommit, r, m.now+m.timeout(m.cfg.Timeouts.PreCommit, r))
			return true
		}
	}
	// Lock: a pre-commit quorum for a block we hold, in this round, once pre-committed.
	if m.step >= StepPreCommit && !m.lockDone[r] {
		for _, id := range quorumBlocks(m.votes[r].powerOf(PreCommit), m.total) {
			if _, ok := m.blocks[id]; !ok {
				continue
			}
			m.lockDone[r] = true
			m.validRound, m.validID = int32(r), id
			if m.step == StepPreCommit {
				m.lockedRound, m.lockedID = int32(r), id
				m.vote(Commit, id)
				m.step = StepCommit
			}
			m.dirty = true
			return true
		}
	}
	if !m.commitTO[r] && Quorum(m.anyTally(r, Commit), m.total) {
		m.commitTO[r] = true
		m.schedule(timeoutCommit, r, m.now+m.timeout(m.cfg.Timeouts.Commit, r))
		return true
	}
	return false
}

func (rv *roundVotes) powerOf(t VoteType) map[hash.Hash]uint64 {
	if rv == nil {
		return nil
	}
	return rv.power[t]
}

// quorumBlocks lists, in byte order, the blocks (not nil) with a quorum in power.
func quorumBlocks(power map[hash.Hash]uint64, total uint64) []hash.Hash {
	var ids []hash.Hash
	for id, p := range power {
		if !id.IsZero() && Quorum(p, total) {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return string(ids[i][:]) < string(ids[j][:]) })
	return ids
}

func (m *Machine) roundPower(r uint32) uint64 {
	rv := m.votes[r]
	if rv == nil {
		return 0
	}
	seen := map[crypto.Address]bool{}
	var p uint64
	for t := 1; t < 3; t++ {
		for a := range rv.votes[t] {
			if !seen[a] {
				seen[a] = true
				p += m.set[m.set.Find(a)].Power
			}
		}
	}
	return p
}

// maybePropose proposes when this validator's rank is due and no better-ranked
// valid proposal arrived.
func (m *Machine) maybePropose() bool {
	if m.cfg.Signer == nil || m.proposed[m.round] != nil || m.set.Find(m.self) < 0 {
		return false
	}
	mine := m.rank(m.self)
	if m.now < m.roundStart+int64(mine)*m.stagger() {
		return false
	}
	if b := m.bestProposal(); b != nil && m.rank(b.Proposer) < mine {
		return false
	}
	p := &Proposal{ChainID: m.cfg.ChainID, Height: m.height, Round: m.round, POLRound: -1, Proposer: m.self}
	if m.validRound >= 0 {
		if b, ok := m.blocks[m.validID]; ok {
			p.POLRound, p.BlockID, p.Block = m.validRound, m.validID, b
			voters := m.votes[uint32(m.validRound)].byBlock[PreCommit][m.validID]
			for _, k := range sortedAddrs(voters) {
				p.POL = append(p.POL, *voters[k])
			}
		}
	}
	if p.Block == nil {
		b, id, err := m.app.Propose(m.height, m.round)
		if err != nil {
			return false
		}
		p.Block, p.BlockID = b, id
		m.blocks[id] = b
	}
	sig, err := m.cfg.Signer.Sign(p.SignBytes())
	if err != nil {
		return false
	}
	p.Signature = sig
	m.proposed[m.round] = p
	m.proposals[m.round] = append(m.proposals[m.round], p)
	m.dirty = true
	m.emit(Message{Proposal: p})
	return true
}

// bestProposal is the best-ranked valid proposal of the current round.
func (m *Machine) bestProposal() *Proposal {
	var best *Proposal
	bestRank := 0
	for _, p := range m.proposals[m.round] {
		if r := m.rank(p.Proposer); best == nil || r < bestRank {
			best, bestRank = p, r
		}
	}
	return best
}

// acceptable applies Tendermint's locking rule to a proposal: pre-commit its block if
// not locked, locked on the same block, or shown a pre-commit quorum for it in a round
// at or after the lock.
func (m *Machine) acceptable(p *Proposal) bool {
	if m.cfg.noLocking {
		return true
	}
	if p.POLRound < 0 {
		return m.lockedRound < 0 || m.lockedID == p.BlockID
	}
	vr := uint32(p.POLRound)
	// The proof-of-lock's votes were each verified when the proposal arrived; they
	// count on their own. The tallies may not hold them all: they keep at most
	// maxVotesPerValidator votes per validator and round, and an equivocator that
	// sent two other pre-commits first would otherwise make an honest proof fall
	// short here for good.
	if !Quorum(max(m.tally(vr, PreCommit, p.BlockID), m.polPower(p)), m.total) {
		return m.lockedID == p.BlockID
	}
	return m.lockedRound <= p.POLRound || m.lockedID == p.BlockID
}

// polPower is the power of the distinct validators whose pre-commits make up p's
// proof-of-lock (checked by onProposal: each for p's block at p.POLRound).
func (m *Machine) polPower(p *Proposal) uint64 {
	var n uint64
	seen := make(map[crypto.Address]bool, len(p.POL))
	for i := range p.POL {
		a := p.POL[i].Validator
		if j := m.set.Find(a); j >= 0 && !seen[a] {
			seen[a] = true
			n += m.set[j].Power
		}
	}
	return n
}

func (m *Machine) certificate(r uint32, id hash.Hash) Certificate {
	c := Certificate{ChainID: m.cfg.ChainID, Height: m.height, Round: r, BlockID: id}
	for _, v := range m.votes[r].byBlock[Commit][id] {
		c.Votes = append(c.Votes, *v)
	}
	sort.Slice(c.Votes, func(i, j int) bool {
		return string(c.Votes[i].Validator[:]) < string(c.Votes[j].Validator[:])
	})
	return c
}

func (m *Machine) decide(c Certificate, block []byte) {
	m.decided = true
	m.lastDecided = &Decided{Cert: c, Block: block}
	m.out.Decisions = append(m.out.Decisions, Decision{Height: m.height, Block: block, Cert: c})
}

func sortedAddrs(m map[crypto.Address]*Vote) []crypto.Address {
	keys := make([]crypto.Address, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return string(keys[i][:]) < string(keys[j][:]) })
	return keys
}

func sortedKeys[K uint32 | uint64, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}
