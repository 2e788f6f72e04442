package bench

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"
)

// DefaultTimeout bounds one repetition of a scenario that sets no Timeout.
const DefaultTimeout = 60 * time.Second

// Scenario is one measurement. Run is called once per repetition, after the
// harness has emptied the bench Redis, and returns one figure in Unit.
type Scenario struct {
	// Name identifies the scenario in -scenarios and in the table, e.g.
	// "asynq/enqueue/g8". Unique.
	Name string
	// Group gathers related scenarios (e.g. "asynq/enqueue"); -scenarios
	// accepts a group name to select all of them.
	Group string
	// Figure says in a few words what is measured, for the table.
	Figure string
	// Unit of Result.Value, e.g. "tasks/s" or "ms".
	Unit string
	// Baseline optionally names another scenario with the same Unit; the
	// table then shows this scenario's median divided by the baseline's.
	// Selecting a scenario also runs its baseline.
	Baseline string
	// Timeout bounds one repetition; zero means DefaultTimeout.
	Timeout time.Duration
	// MaxReps caps the repetitions of a long scenario whose one run
	// already holds many samples; zero means -reps.
	MaxReps int
	// Run performs one repetition. ctx carries the timeout; env gives the
	// bench Redis and helpers. Run must release everything it started
	// (servers, clients, goroutines) before returning.
	Run func(ctx context.Context, env *Env) (Result, error)
}

// Result is what one repetition of a scenario measured.
type Result struct {
	// Value is the figure, in the scenario's Unit.
	Value float64
	// Count is how many items (tasks, rows, calls) the repetition handled.
	Count int
	// Elapsed is the measured interval the figure derives from.
	Elapsed time.Duration
	// Also holds further figures of the same repetition (CPU per job, a
	// second percentile). Each becomes a row of its own, named
	// Scenario.Name + "/" + Extra.Name, compared with the baseline's row
	// of the same extra name when the baseline reports one.
	Also []Extra
}

// Extra is one further figure of a repetition; see [Result.Also].
type Extra struct {
	Name  string // e.g. "redis-cpu"; unique within the scenario
	Unit  string // e.g. "µs/job"
	Value float64
}

// Rate returns a Result of count items per second over elapsed.
func Rate(count int, elapsed time.Duration) Result {
	r := Result{Count: count, Elapsed: elapsed}
	if elapsed > 0 {
		r.Value = float64(count) / elapsed.Seconds()
	}
	return r
}

// scenarios lists every registered scenario, in table order. To add
// scenarios, write a function returning []Scenario in its own file and
// append its result here.
func scenarios() []Scenario {
	var all []Scenario
	all = append(all, asynqEnqueueScenarios()...)
	all = append(all, asynqDrainScenarios()...)
	all = append(all, workerDrainScenarios()...)
	all = append(all, dyplsimSDKScenarios()...)
	all = append(all, limiterScenarios()...)
	all = append(all, latencyScenarios()...)
	return all
}

// validate checks that names are unique and baselines exist.
func validate(all []Scenario) error {
	byName := make(map[string]Scenario, len(all))
	for _, s := range all {
		if s.Name == "" || s.Run == nil || s.Unit == "" {
			return fmt.Errorf("scenario %q: Name, Unit and Run are required", s.Name)
		}
		if _, dup := byName[s.Name]; dup {
			return fmt.Errorf("scenario %q registered twice", s.Name)
		}
		byName[s.Name] = s
	}
	for _, s := range all {
		if s.Baseline == "" {
			continue
		}
		b, ok := byName[s.Baseline]
		if !ok {
			return fmt.Errorf("scenario %q: baseline %q is not registered", s.Name, s.Baseline)
		}
		if b.Unit != s.Unit {
			return fmt.Errorf("scenario %q: unit %q differs from its baseline %q (%q)", s.Name, s.Unit, b.Name, b.Unit)
		}
	}
	return nil
}

// selectScenarios returns the scenarios of all that match the
// comma-separated patterns (a name, a group, or a path.Match pattern on the
// name; empty selects everything), plus the baselines they name, in
// registry order.
func selectScenarios(all []Scenario, patterns string) ([]Scenario, error) {
	var pats []string
	for _, p := range strings.Split(patterns, ",") {
		if p = strings.TrimSpace(p); p != "" {
			pats = append(pats, p)
		}
	}
	if len(pats) == 0 {
		return all, nil
	}
	want := make(map[string]bool)
	for _, p := range pats {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("bad scenario pattern %q: %v", p, err)
		}
		matched := false
		for _, s := range all {
			ok, _ := path.Match(p, s.Name)
			if ok || p == s.Name || p == s.Group {
				want[s.Name] = true
				matched = true
			}
		}
		if !matched {
			return nil, fmt.Errorf("no scenario matches %q (use -list to see them)", p)
		}
	}
	for changed := true; changed; {
		changed = false
		for _, s := range all {
			if want[s.Name] && s.Baseline != "" && !want[s.Baseline] {
				want[s.Baseline] = true
				changed = true
			}
		}
	}
	var sel []Scenario
	for _, s := range all {
		if want[s.Name] {
			sel = append(sel, s)
		}
	}
	return sel, nil
}
