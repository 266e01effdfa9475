package node

import (
	"sync"
	"time"
)

// blockBudget bounds a proposal by what it costs to execute, not only by count.
// A proposal must be built, sent and checked by the other validators before the
// next proposer rank's turn (the stagger): when it is not, that rank proposes
// too and every validator executes both candidates, which makes the height
// slower still. Transfers execute at tens of thousands a second and never hit
// the bound; crosschain prepares cost several times more, and a block of 2,000
// of them took two seconds to commit with a 200 ms stagger.
type blockBudget struct {
	mu    sync.Mutex
	perTx float64 // moving average, seconds of execution per transaction
}

// budgetShare is the part of the stagger a proposal's execution may take: the
// proposer executes it, then the others decode and execute it again, several
// of them sharing a machine's cores in a local testnet.
const budgetShare = 0.4

// minBlockTxs keeps the bound from starving a chain whose per-transaction cost
// was measured on a small block, where fixed costs dominate.
const minBlockTxs = 200

// observe records that executing txs transactions took d.
func (b *blockBudget) observe(d time.Duration, txs int) {
	if txs < minBlockTxs/4 {
		return // a small block's fixed costs say little about its transactions
	}
	per := d.Seconds() / float64(txs)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.perTx == 0 {
		b.perTx = per
	} else {
		b.perTx = 0.7*b.perTx + 0.3*per
	}
}

// limit is how many transactions a proposal may carry, at most most, when the
// stagger between proposer ranks is stagger.
func (b *blockBudget) limit(stagger time.Duration, most int) int {
	b.mu.Lock()
	per := b.perTx
	b.mu.Unlock()
	if per <= 0 || stagger <= 0 {
		return most
	}
	return min(most, max(int(budgetShare*stagger.Seconds()/per), minBlockTxs))
}
