package crosschain_test

import (
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var flagMutations = flag.Bool("mutations", false, "run TestEngineMutations: each mutation of the engine recompiles the package (make mutate)")

// mutation is a change to engine.go that the simulations must catch.
type mutation struct {
	name     string
	old, new string
}

// mutations break the engine the ways a planner can go wrong: steps before
// their time, a lifecycle misread, a decide before every leg is proven.
var mutations = []mutation{
	{"finish before the decision", `	if o.Decision.Found {
		decided(o, &p)
	} else if o.Decision.Read || !o.Coordinator.Reachable {
		undecided(o, &p)
	}`, `	if o.Decision.Found {
		decided(o, &p)
	} else if o.Decision.Read || !o.Coordinator.Reachable {
		undecided(o, &p)
		for i, l := range o.Signed.XTx.Legs {
			if o.Legs[i].Record.Found && l.Chain == o.Signed.XTx.Coordinator {
				p.Steps = append(p.Steps, Action{Kind: StepFinish, Chain: l.Chain, Leg: i, Key: StepKey(StepFinish, id, i), Transform: &Finish{XTx: *x, Leg: uint32(i)}})
			}
		}
	}`},
	{"a prepared leg counts as finished", `func finished(s Status) bool { return s == Committed || s == Aborted }`,
		`func finished(s Status) bool { return s != Pending }`},
	{"decide before every leg is proven", `	if !o.Coordinator.Reachable || (!ready && !refused) {
		return
	}`, `	if !o.Coordinator.Reachable || (!ready && !refused && len(proofs) < 0) {
		return
	}`},
}

// TestEngineMutations compiles the package with each mutation of the engine
// (go test -overlay) and checks that the simulation with the shipped relay
// fails. It is slow (a build per mutation), so it runs with -mutations only.
func TestEngineMutations(t *testing.T) {
	if !*flagMutations {
		t.Skip("run with -mutations (make mutate)")
	}
	src, err := os.ReadFile("engine.go")
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs("engine.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mutations {
		t.Run(m.name, func(t *testing.T) {
			if !strings.Contains(string(src), m.old) {
				t.Fatalf("engine.go no longer holds the code this mutation changes:\n%s", m.old)
			}
			dir := t.TempDir()
			mutated := filepath.Join(dir, "engine.go")
			if err := os.WriteFile(mutated, []byte(strings.Replace(string(src), m.old, m.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			overlay, _ := json.Marshal(map[string]map[string]string{"Replace": {abs: mutated}})
			ov := filepath.Join(dir, "overlay.json")
			if err := os.WriteFile(ov, overlay, 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("go", "test", "-overlay", ov, "-count=1", "-run", "^TestRandomized$", ".", "-runs=40")
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the simulation passed with the engine mutated (%s):\n%s", m.name, out)
			}
			caught := ""
			for _, l := range strings.Split(string(out), "\n") {
				if strings.Contains(l, "RELAY:") || strings.Contains(l, "LIVENESS") || strings.Contains(l, "not settled") || strings.Contains(l, "ATOMICITY") {
					caught = strings.TrimSpace(l)
					break
				}
			}
			if caught == "" {
				t.Fatalf("the mutated build failed, but not by a simulation check (%s):\n%s", m.name, out)
			}
			t.Logf("caught: %.300s", caught)
		})
	}
}
