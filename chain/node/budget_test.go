package node

import (
	"testing"
	"time"
)

// TestBlockBudget: the proposal bound follows the measured execution cost, never
// exceeds MaxBlockTxs, never starves below minBlockTxs, and ignores small blocks.
func TestBlockBudget(t *testing.T) {
	var b blockBudget
	stagger := 200 * time.Millisecond
	if got := b.limit(stagger, 2000); got != 2000 {
		t.Fatalf("unmeasured: limit %d, want MaxBlockTxs", got)
	}
	b.observe(time.Second, 10) // a tiny block: its cost is fixed costs
	if got := b.limit(stagger, 2000); got != 2000 {
		t.Fatalf("after a tiny block: limit %d", got)
	}
	b.observe(20*time.Millisecond, 2000) // 10 µs a transaction: 8,000 fit in 80 ms
	if got := b.limit(stagger, 2000); got != 2000 {
		t.Fatalf("cheap transactions: limit %d, want 2000", got)
	}
	for range 20 { // converge on 200 µs a transaction: 400 fit
		b.observe(200*time.Millisecond, 1000)
	}
	if got := b.limit(stagger, 2000); got < 390 || got > 410 {
		t.Fatalf("costly transactions: limit %d, want ~400", got)
	}
	for range 20 {
		b.observe(10*time.Second, 1000)
	}
	if got := b.limit(stagger, 2000); got != minBlockTxs {
		t.Fatalf("very costly transactions: limit %d, want the floor %d", got, minBlockTxs)
	}
}
