package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/worker"
)

// series sums the values (counter, gauge, or histogram count) of name's
// series whose labels include want; -1 when name has no series at all.
func series(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		sum := 0.0
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
		return sum
	}
	return -1
}

// dyplsq_jobs_total counts each job once, at its end, however many
// attempts it took; the attempts that sent it back are
// dyplsq_job_retries_total; each outcome is timed from the enqueue.
func TestJobsCountedOncePerJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, nil)
	e.sim.AddFault(dyplsim.FaultRule{Action: "UpdateSubscription", Kind: "code", Code: "isp.SYSTEM_ERROR", Count: 2})
	e.start()
	u := outIDUpdate(11, "once")
	e.waitState(e.enqueue(u), 10*time.Second, asynq.TaskStateCompleted)
	if n := series(t, e.reg, "dyplsq_jobs_total", nil); n != 1 {
		t.Errorf("dyplsq_jobs_total sums to %v for one job, want 1", n)
	}
	if n := series(t, e.reg, "dyplsq_jobs_total", map[string]string{"outcome": "applied"}); n != 1 {
		t.Errorf("applied %v", n)
	}
	if n := series(t, e.reg, "dyplsq_job_retries_total", map[string]string{"reason": "transient", "code": "isp.SYSTEM_ERROR"}); n != 2 {
		t.Errorf("dyplsq_job_retries_total{transient} %v, want 2", n)
	}
	if n := series(t, e.reg, "dyplsq_job_latency_seconds", map[string]string{"outcome": "applied"}); n != 1 {
		t.Errorf("dyplsq_job_latency_seconds count %v, want 1", n)
	}
	for _, gone := range []string{"dyplsq_superseded_total", "dyplsq_throttled_total", "dyplsq_limiter_rate"} {
		if n := series(t, e.reg, gone, nil); n != -1 {
			t.Errorf("%s still there: it duplicates a labelled series or lacks its unit", gone)
		}
	}
}

// A new dead letter counts in dyplsq_dead_letters_created_total, which a
// purge does not lower (dyplsq_dead_letters is a gauge).
func TestDeadLettersCreatedCounter(t *testing.T) {
	t.Parallel()
	e := newStartedEnv(t)
	u := outIDUpdate(9998, "dead") // no such binding
	id := e.enqueue(u)
	e.waitState(id, 10*time.Second, asynq.TaskStateArchived)
	e.deadRecord(id)
	if n := series(t, e.reg, "dyplsq_dead_letters_created_total", nil); n != 1 {
		t.Fatalf("dyplsq_dead_letters_created_total %v, want 1", n)
	}
	// A purge: the archived task and its record go.
	if err := e.insp.DeleteTask(e.queue, id); err != nil {
		t.Fatal(err)
	}
	if err := e.dlq.Delete(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	if n := series(t, e.reg, "dyplsq_dead_letters_created_total", nil); n != 1 {
		t.Fatalf("after a purge: %v, want still 1", n)
	}
	// A job archived by an operator gets its record from the sweep.
	u2 := outIDUpdate(12, "archived")
	r, err := e.prod.Enqueue(e.ctx, u2)
	if err != nil {
		t.Fatal(err)
	}
	_ = e.insp.PauseQueue(e.queue)
	defer func() { _ = e.insp.UnpauseQueue(e.queue) }()
	if err := e.insp.ArchiveTask(e.queue, r.TaskID); err != nil {
		t.Logf("archive: %v (the job ran first)", err)
		return
	}
	eventually(t, 5*time.Second, "the sweep's record to count", func() bool {
		return series(t, e.reg, "dyplsq_dead_letters_created_total", nil) == 2
	})
}

// dyplsq_halted is 0 before a halt and after it, not absent; the halt's
// start is a timestamp; the limiter gauge holds the configured rate from
// the start.
func TestHaltAndLimiterGauges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, func(c *worker.Config) {
		c.MaxAttempts = 1
		c.QPS = 250
		c.HaltProbeMin = 5 * time.Second // longer than the halt report's period
	})
	w := e.start()
	if n := series(t, e.reg, "dyplsq_halted", nil); n != 0 {
		t.Fatalf("dyplsq_halted before any halt: %v, want 0", n)
	}
	if n := series(t, e.reg, "dyplsq_limiter_rate_per_second", nil); n != 250 {
		t.Fatalf("dyplsq_limiter_rate_per_second %v before any call, want 250", n)
	}
	e.sim.AddFault(dyplsim.FaultRule{Action: "UpdateSubscription", Kind: "code", Code: "isv.ACCOUNT_ABNORMAL", Message: "account in arrears", Count: 1})
	before := time.Now()
	u := outIDUpdate(13, "halt")
	id := e.enqueue(u)
	eventually(t, 10*time.Second, "dyplsq_halted{code=isv.ACCOUNT_ABNORMAL} = 1", func() bool {
		return series(t, e.reg, "dyplsq_halted", map[string]string{"code": "isv.ACCOUNT_ABNORMAL"}) == 1
	})
	since := series(t, e.reg, "dyplsq_halted_since_timestamp_seconds", nil)
	if since < float64(before.Unix())-1 || since > float64(time.Now().Unix())+1 {
		t.Fatalf("dyplsq_halted_since_timestamp_seconds %v, halt began after %v", since, before.Unix())
	}
	e.waitState(id, 20*time.Second, asynq.TaskStateCompleted)
	eventually(t, 5*time.Second, "dyplsq_halted back to 0", func() bool {
		return !w.Halt().Halted && series(t, e.reg, "dyplsq_halted", nil) == 0 &&
			series(t, e.reg, "dyplsq_halted_since_timestamp_seconds", nil) == 0
	})
	// The halt's own series drops to 0 rather than vanishing, so that a
	// query by code sees the halt end.
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if mf.GetName() == "dyplsq_halted" && l.GetName() == "code" && l.GetValue() == "isv.ACCOUNT_ABNORMAL" {
					found = m.GetGauge().GetValue() == 0
				}
			}
		}
	}
	if !found {
		t.Error("dyplsq_halted{code=isv.ACCOUNT_ABNORMAL} is gone after the halt, want 0")
	}
	if err := w.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
}
