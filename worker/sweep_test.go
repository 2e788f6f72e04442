package worker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dyplsq/dyplsq/dyplsim"
)

// A job archived from the UI (here: the inspector call the UI makes) gets
// a dead-letter record from the periodic sweep, and the dead-letter
// metrics count it.
func TestArchiveClickGetsARecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, nil)
	u := seed(9, "updateOutId")
	u.OutId = "later"
	r, err := e.prod.Enqueue(e.ctx, u, asynq.ProcessIn(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.insp.ArchiveTask(e.queue, r.TaskID); err != nil {
		t.Fatal(err)
	}
	e.start()
	rec := e.deadRecord(r.TaskID)
	if rec.Reason != "archived by an operator" || rec.SubsId != u.SubsId || rec.Version != r.Version {
		t.Fatalf("record %+v", rec)
	}
	eventually(t, 5*time.Second, "dyplsq_dead_letters = 1", func() bool {
		return gauge(t, e.reg, "dyplsq_dead_letters") == 1
	})
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

func TestMetricsSeries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, nil)
	e.start()
	u := seed(10, "updateOutId")
	u.OutId = "m"
	e.waitState(e.enqueue(u), 10*time.Second, asynq.TaskStateCompleted)
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	all := strings.Join(names, " ")
	for _, want := range []string{"dyplsq_jobs_total", "dyplsq_api_calls_total", "dyplsq_api_latency_seconds", "dyplsq_dead_letters", "dyplsq_dead_letter_oldest_age_seconds"} {
		if !strings.Contains(all, want) {
			t.Errorf("no series %s in %s", want, all)
		}
	}
}
