package node

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/plugchain/plug/chain/boltcheck"
)

func TestMoveAsideNothingToMove(t *testing.T) {
	if _, _, err := MoveAside(t.TempDir(), time.Now()); err == nil {
		t.Fatal("moved nothing without an error")
	}
}

// A validator whose databases are moved aside (`plug node resync`) starts at
// genesis, fetches every block from its peers by block sync and reaches the
// same state root as the others. MoveAside refuses while the node runs.
func TestResyncedValidatorSyncsFromPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node test")
	}
	tn := newTestNet(t, 4)
	for i := range tn.nodes {
		tn.waitHeight(i, 4, 30*time.Second)
	}
	_, _, err := MoveAside(tn.homes[3], time.Now())
	if !errors.Is(err, boltcheck.ErrLocked) {
		t.Fatalf("MoveAside of a running node: %v", err)
	}
	tn.nodes[3].Close()
	tn.nodes[3] = nil
	to, moved, err := MoveAside(tn.homes[3], time.Now())
	if err != nil || len(moved) != 2 {
		t.Fatalf("MoveAside: %v %v", moved, err)
	}
	for _, name := range []string{StateDB, ChainDB} {
		if _, err := os.Stat(filepath.Join(to, name)); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(tn.homes[3], name)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s still in the home: %v", name, err)
		}
	}
	tn.start(3)
	if h := tn.nodes[3].height(); h > 1 {
		t.Fatalf("a resynced node starts at height %d", h)
	}
	target := tn.nodes[0].height() + 1
	tn.waitHeight(3, target, 30*time.Second)
	h := min(tn.nodes[0].height(), tn.nodes[3].height())
	r0, err := tn.nodes[0].State(h, "supply/STAKE", false)
	if err != nil {
		t.Fatal(err)
	}
	r3, err := tn.nodes[3].State(h, "supply/STAKE", false)
	if err != nil {
		t.Fatal(err)
	}
	if r0.StateRoot != r3.StateRoot {
		t.Fatalf("height %d: state roots differ after the resync", h)
	}
}
