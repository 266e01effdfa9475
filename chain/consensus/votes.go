package consensus

import (
	"sort"

	"github.com/plugchain/plug/chain/crypto"
	"github.com/plugchain/plug/chain/hash"
)

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
