package deploy

import (
	"log/slog"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
)

// TestAlertRules parses deploy/prometheus/alerts.yml with Prometheus's own
// rule parser (which also parses every expression and template) and checks
// that every series the rules name is one the worker serves, and that the
// alerts an operator needs are there.
func TestAlertRules(t *testing.T) {
	groups, errs := rulefmt.ParseFile("prometheus/alerts.yml", false, model.UTF8Validation, promql, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Error(err)
	}
	if groups == nil {
		t.FailNow()
	}
	known := workerSeries(t)
	alerts := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			if r.Annotations["summary"] == "" {
				t.Errorf("alert %s has no summary", r.Alert)
			}
			names, err := seriesOf(r.Expr)
			if err != nil {
				t.Errorf("alert %s: %v", r.Alert, err)
			}
			if len(names) == 0 {
				t.Errorf("alert %s names no series", r.Alert)
			}
			for _, n := range names {
				if !known[n] {
					t.Errorf("alert %s names %s, which the worker does not export", r.Alert, n)
				}
			}
		}
	}
	for _, want := range []string{
		"DyplsqDeadLettersCreated", "DyplsqOldestPendingJob", "DyplsqHalted", // README.md's
		"DyplsqDeadLettersGrowing", "DyplsqThrottledShareHigh", "DyplsqNoJobsCompleting",
	} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

// TestSeriesCheckFails makes sure the checks above can fail: a series the
// worker does not serve, rate() on a gauge named like a counter, and a
// query that does not parse are all caught.
func TestSeriesCheckFails(t *testing.T) {
	known := workerSeries(t)
	if known["dyplsq_throttled_total"] {
		t.Error("a removed series is taken as served")
	}
	if _, err := seriesOf(`rate(asynq_tasks_enqueued_total[5m])`); err == nil {
		t.Error("rate() on a gauge passes")
	}
	if _, err := seriesOf(`sum(rate(dyplsq_jobs_total[5m]`); err == nil {
		t.Error("a broken query parses")
	}
	names, err := seriesOf(`sum(rate(dyplsq_jobs_total[$__rate_interval])) / on() max(asynq_queue_size)`)
	if err != nil || len(names) != 2 || names[0] != "asynq_queue_size" || names[1] != "dyplsq_jobs_total" {
		t.Errorf("series of a query: %v, %v", names, err)
	}
}
