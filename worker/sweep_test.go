package worker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/deadletter"
	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/tasks"
)

// A job archived from the UI (here: the inspector call the UI makes) gets
// a dead-letter record from the periodic sweep, and the dead-letter
// metrics count it.
func TestArchiveClickGetsARecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, nil)
	u := outIDUpdate(9, "later")
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
	e := newStartedEnv(t)
	u := outIDUpdate(10, "m")
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
	for _, want := range []string{"dyplsq_jobs_total", "dyplsq_api_calls_total", "dyplsq_api_latency_seconds", "dyplsq_dead_letters", "dyplsq_dead_letter_oldest_age_seconds",
		"dyplsq_job_latency_seconds", "dyplsq_halted", "dyplsq_limiter_rate_per_second"} {
		if !strings.Contains(all, want) {
			t.Errorf("no series %s in %s", want, all)
		}
	}
}

// Jobs of a CLI batch that reach the archive outside the handler (a job of
// a newer payload schema retried until asynq's MaxRetry ran out; a click in
// the UI) end their batch row dead with their true reason, so the batch is
// done and enqueue --wait returns.
func TestArchivedOutsideHandlerEndsBatchRow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, nil)
	bs := &batch.Store{Redis: e.rdb, Prefix: e.ns}
	b, err := batch.IDOf("csv", strings.NewReader(e.ns))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := bs.Begin(e.ctx, batch.Info{ID: b, File: "f.csv", Format: "csv", Queue: e.queue, Lines: 3, Rows: 2, ValidRows: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := bs.Record(e.ctx, b, []batch.Entry{{Line: 2, Outcome: batch.OutcomePending}, {Line: 3, Outcome: batch.OutcomePending}}); err != nil {
		t.Fatal(err)
	}
	if _, err := bs.Complete(e.ctx, b); err != nil {
		t.Fatal(err)
	}
	sb := dyplsim.SeedBinding(11)
	payload := func(line, schema int) []byte {
		return fmt.Appendf(nil, `{"PoolKey":%q,"SubsId":%q,"PhoneNoX":%q,"OperateType":"updateOutId","OutId":"o%d","_meta":{"schema":%d,"version":%d,"batch":%q,"line":%d,"source":"cli"}}`,
			sb.PoolKey, sb.SubsId, sb.PhoneNoX, line, schema, 900+line, b, line)
	}
	client := asynq.NewClientFromRedisClient(e.rdb)
	newer, clicked := batch.TaskID(b, 2), batch.TaskID(b, 3)
	if _, err := client.Enqueue(asynq.NewTask(tasks.TypeUpdateSubscription, payload(2, 99)), asynq.Queue(e.queue), asynq.TaskID(newer), asynq.MaxRetry(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(asynq.NewTask(tasks.TypeUpdateSubscription, payload(3, 1)), asynq.Queue(e.queue), asynq.TaskID(clicked), asynq.ProcessIn(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := e.insp.ArchiveTask(e.queue, clicked); err != nil {
		t.Fatal(err)
	}
	e.start()
	e.waitState(newer, 10*time.Second, asynq.TaskStateArchived)
	var st batch.Status
	eventually(t, 10*time.Second, "the batch is done", func() bool {
		st, err = bs.Status(e.ctx, b)
		return err == nil && st.Done()
	})
	rows, err := bs.Rows(e.ctx, b, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{2: deadletter.CodeUnsupportedSchema, 3: deadletter.CodeArchived}
	for _, r := range rows {
		if r.Outcome != batch.OutcomeDead || r.Code != want[r.Line] {
			t.Errorf("line %d: %s %s, want dead %s", r.Line, r.Outcome, r.Code, want[r.Line])
		}
		if rec := e.deadRecord(r.TaskID); rec.Code != want[r.Line] {
			t.Errorf("line %d: record %s", r.Line, rec)
		}
	}
	if st.Dead != 2 || st.Pending != 0 {
		t.Errorf("counts %+v", st.Counts)
	}
}
