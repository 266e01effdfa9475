package consensus

import (
	"math"

	"github.com/plugchain/plug/chain/hash"
)

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
	// Heartbeat, when positive and the App reports pending transactions (Pender),
	// is how long an idle validator waits for transactions before starting a height
	// anyway: an idle chain makes one block per Heartbeat ms instead of one per
	// NewHeight, while a transaction still starts the height at once. Any message of
	// the height from a peer also starts it.
	Heartbeat int64
}

// DefaultTimeouts suit validators on one LAN or one machine.
func DefaultTimeouts() Timeouts {
	return Timeouts{Stagger: 200, Propose: 300, PreCommit: 200, Commit: 200, Delta: 100, Rebroadcast: 500, NewHeight: 50, Heartbeat: 1000}
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
