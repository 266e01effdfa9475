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

// Evidence is proof that a validator signed two conflicting messages: two votes
// (VoteA, VoteB) or two proposals (ProposalA, ProposalB). Only vote evidence is
// punished on chain (see VerifyVotes); conflicting proposals are reported.
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
	idle      bool  // waiting for transactions before round 0 (Heartbeat)
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
	if _, ok := m.app.(Pender); ok && m.cfg.Timeouts.Heartbeat > 0 {
		m.idle, m.idleUntil = true, m.now+max(m.cfg.Timeouts.NewHeight, m.cfg.Timeouts.Heartbeat)
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
