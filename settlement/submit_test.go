package settlement

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/plugchain/plug/chain/client"
	"github.com/plugchain/plug/chain/encoding"
	"github.com/plugchain/plug/chain/exec"
	"github.com/plugchain/plug/chain/gateway"
	"github.com/plugchain/plug/crosschain"
)

// historyChain answers state reads at a height: a key exists after the block
// that wrote it (written[key]) and in every later one.
type historyChain struct {
	written map[string]uint64
	err     error
}

func (h historyChain) State(_ context.Context, height uint64, key string, _ bool) (*client.StateResult, error) {
	if h.err != nil {
		return nil, h.err
	}
	at, ok := h.written[key]
	if !ok || (height > 0 && height < at) {
		return &client.StateResult{Key: key, Height: height}, nil
	}
	b, err := encoding.Marshal(crosschain.LegRecord{Status: crosschain.Prepared, Height: at})
	if err != nil {
		return nil, err
	}
	return &client.StateResult{Key: key, Height: height, Found: true, Value: b}, nil
}

// TestFailedPrepare: a failed prepare of a coordinator leg is harmless exactly
// when the chain shows the leg recorded by the receipt's block, whatever the
// receipt's text says; on other chains it is always reported.
func TestFailedPrepare(t *testing.T) {
	x, err := DvP(alice, bob, LegSpec{"alpha", "BOND", 10}, LegSpec{"beta", "USD", 1000}).XTx("alpha", deadline)
	if err != nil {
		t.Fatal(err)
	}
	id := x.ID()
	already := "invalid: " + crosschain.ErrAlreadyPrepared.Error() + ": leg 0"
	other := "invalid: the receipt's wording changed"
	receipt := func(height uint64, text string) *gateway.TxResult {
		return &gateway.TxResult{Height: height, Code: exec.Failed, Error: text}
	}
	recorded := historyChain{written: map[string]uint64{crosschain.LegKey(id, 0): 7, crosschain.LegKey(id, 1): 7}}
	for _, c := range []struct {
		name  string
		chain Reader
		leg   int
		r     *gateway.TxResult
		moot  bool
	}{
		{"coordinator leg recorded by a decide", recorded, 0, receipt(7, already), true},
		{"recorded, other wording", recorded, 0, receipt(9, other), true},
		{"the text alone proves nothing", historyChain{}, 0, receipt(7, already), false},
		{"recorded only after the receipt's block", recorded, 0, receipt(6, already), false},
		{"not the coordinator", recorded, 1, receipt(7, already), false},
		{"state unreadable", historyChain{err: errors.New("no node reachable")}, 0, receipt(7, already), false},
	} {
		got := failedPrepare(context.Background(), c.chain, &x, c.leg, c.r)
		if c.moot != (got == "") {
			t.Errorf("%s: error %q, want moot=%v", c.name, got, c.moot)
		}
		if !c.moot && !strings.Contains(got, c.r.Error) {
			t.Errorf("%s: error %q does not carry the receipt's %q", c.name, got, c.r.Error)
		}
	}
}
