package consensus

import (
	"encoding/binary"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/hash"
	"github.com/plugchain/plug/chain/valset"
)

func stepAfter(t VoteType) Step {
	if t == PreCommit {
		return StepPreCommit
	}
	return StepCommit
}

func voteKey(round uint32, t VoteType) uint64 { return uint64(round)<<8 | uint64(t) }

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

// progress applies every rule whose condition holds, until none does.
func (m *Machine) progress() {
	for !m.decided && m.step1() {
	}
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

func (m *Machine) decide(c Certificate, block []byte) {
	m.decided = true
	m.lastDecided = &Decided{Cert: c, Block: block}
	m.out.Decisions = append(m.out.Decisions, Decision{Height: m.height, Block: block, Cert: c})
}
