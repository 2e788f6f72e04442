//go:build chaos

package worker

import (
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/internal/safebuf"
)

// chkEnvInt reads a positive integer setting.
func chkEnvInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// TestChaosChecker runs randomized, seeded schedules (200 by default;
// DYPLSQ_CHECK_SCHEDULES=N runs N, DYPLSQ_CHECK_SEED=S replays one) and
// fails with the seed and replay command of every schedule that breaks a
// guarantee. DYPLSQ_CHECK_PARALLEL bounds the schedules run at once.
func TestChaosChecker(t *testing.T) {
	env := newChkEnv(t)
	variant := os.Getenv("DYPLSQ_CHECK_VARIANT")
	calm := os.Getenv("DYPLSQ_CHECK_CALM") != ""
	var seeds []uint64
	if s := os.Getenv("DYPLSQ_CHECK_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("DYPLSQ_CHECK_SEED=%q: %v", s, err)
		}
		seeds = []uint64{seed}
		t.Logf("replaying %s", newChkPlan(seed, variant, calm))
	} else {
		n := chkEnvInt(t, "DYPLSQ_CHECK_SCHEDULES", 200)
		base := rand.Uint64N(1<<40) * 1000
		t.Logf("%d schedules, seeds %d to %d", n, base, base+uint64(n)-1)
		for i := range n {
			seeds = append(seeds, base+uint64(i))
		}
	}
	parallel := chkEnvInt(t, "DYPLSQ_CHECK_PARALLEL", max(6, 4*runtime.GOMAXPROCS(0)))
	start := time.Now()
	reps := runChkSchedules(env, seeds, variant, calm, parallel, false)
	for _, r := range reps {
		safebuf.CheckLog(t, r.logs)
	}
	took := time.Since(start)
	reportChk(t, reps, true)
	t.Logf("%d schedules in %s: %.0f schedules/min", len(reps), took.Round(time.Second), float64(len(reps))/took.Minutes())
}

// The checker catches the broken variants: each within a bounded number
// of calm schedules (which the real fence passes; see TestCheckerCalm),
// and with the violation the variant must cause.
func TestChaosCheckerCatchesBrokenFence(t *testing.T) {
	env := newChkEnv(t)
	// Calm schedules end within seconds; a broken fence that holds
	// bindings forever is caught sooner with a shorter bound.
	bound := chkBound
	chkBound = 20 * time.Second
	defer func() { chkBound = bound }()
	for _, tc := range []struct {
		variant string
		want    []string
	}{
		{chkVariantFenceOff, []string{"overlap", "applied-below", "newest-lost"}},
		{chkVariantNoCommit, []string{"applied-below", "newest-lost", "not-ended"}},
	} {
		t.Run(tc.variant, func(t *testing.T) {
			const bound = 12
			var seeds []uint64
			base := rand.Uint64N(1<<40) * 1000
			for i := range bound {
				seeds = append(seeds, base+uint64(i))
			}
			reps := runChkSchedules(env, seeds, tc.variant, true, 4, true)
			kinds := reportChk(t, reps, false)
			for _, k := range tc.want {
				if seed, ok := kinds[k]; ok {
					t.Logf("variant %s caught: %s first in seed %d (%d schedules run)", tc.variant, k, seed, len(reps))
					return
				}
			}
			t.Errorf("variant %s not caught in %d schedules: kinds %v, want one of %v", tc.variant, len(reps), kinds, tc.want)
		})
	}
}
