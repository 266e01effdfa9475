package crosschain_test

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// One seed flag for every simulation of the package: a run is replayed by
// its seed alone, with the command replay prints.
var (
	flagSeed = flag.Uint64("seed", 0, "run each simulation once, with this seed (also PLUG_SEED)")
	flagRuns = flag.Int("runs", 0, "runs of each simulation (0: its default; an eighth or a third of it with -short)")
)

// simSeeds returns the first seed and the number of runs of the calling
// simulation: its fixed base seed and default runs (divided by shortDiv with
// -short), or the one -seed (or PLUG_SEED), or -runs.
func simSeeds(t *testing.T, base uint64, runs, shortDiv int) (uint64, int) {
	if testing.Short() {
		runs = max(1, runs/shortDiv)
	}
	if *flagRuns > 0 {
		runs = *flagRuns
	}
	seed := *flagSeed
	if env := os.Getenv("PLUG_SEED"); seed == 0 && env != "" {
		var err error
		if seed, err = strconv.ParseUint(env, 10, 64); err != nil {
			t.Fatalf("PLUG_SEED=%q: want a seed such as 42", env)
		}
	}
	if seed != 0 {
		base, runs = seed, 1
	}
	t.Logf("seeds %d to %d (replay one with -seed=N)", base, base+uint64(runs)-1)
	return base, runs
}

// replay is the command that replays seed of the running test.
func replay(t *testing.T, seed uint64) string {
	top, _, _ := strings.Cut(t.Name(), "/")
	return fmt.Sprintf("go test ./crosschain -run '^%s$' -seed=%d -v", top, seed)
}
