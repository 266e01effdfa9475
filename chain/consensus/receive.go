package consensus

import (
	"fmt"

	"github.com/plugchain/plug/chain/crypto"
)

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
