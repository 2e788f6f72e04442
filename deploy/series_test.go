package deploy

import (
	"context"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/dyplsq/dyplsq/api"
	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/monitor"
	"github.com/dyplsq/dyplsq/worker"
)

// recorder is a Registerer that notes the name of every series registered
// through it (with a histogram's _bucket, _sum and _count) and passes the
// collector on to a real registry.
type recorder struct {
	*prometheus.Registry
	mu    sync.Mutex
	names map[string]bool
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *recorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	r.mu.Lock()
	defer r.mu.Unlock()
	for d := range ch {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			continue
		}
		r.names[m[1]] = true
		switch c.(type) {
		case prometheus.Histogram, *prometheus.HistogramVec:
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				r.names[m[1]+s] = true
			}
		}
	}
	return r.Registry.Register(c)
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

var (
	seriesOnce sync.Once
	seriesSet  map[string]bool
)

// workerSeries returns the names of every series a worker process serves at
// /metrics, built as cmd/worker builds them: the worker's own metrics and
// its dead-letter collector, the HTTP API's, and asynq's queue series that
// the monitor adds (read from Redis with a queue holding a task, so that
// each of them is sent).
func workerSeries(t *testing.T) map[string]bool {
	t.Helper()
	seriesOnce.Do(func() { seriesSet = buildSeries(t) })
	if seriesSet == nil {
		t.Fatal("the worker's series could not be gathered")
	}
	return seriesSet
}

func buildSeries(t *testing.T) map[string]bool {
	rdb := redistest.Client(t)
	ns := redistest.Namespace(t)
	rec := &recorder{Registry: prometheus.NewRegistry(), names: map[string]bool{}}
	client, err := dypls.New(dypls.Config{Endpoint: "http://127.0.0.1:1", AccessKeyID: "id", AccessKeySecret: "secret", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := worker.New(worker.Config{Registry: rec, KeyPrefix: ns, Queues: map[string]int{ns: 1}, Logger: zerolog.Nop()}, rdb, client); err != nil {
		t.Fatal(err)
	}
	if _, err := api.New(api.Config{Redis: rdb, KeyPrefix: ns, Registry: rec, Logger: zerolog.Nop(),
		Tokens: []api.Token{{Name: "t", Secret: "0123456789abcdef0123"}}}); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	t.Cleanup(func() { _ = insp.DeleteQueue(ns, true) })
	if _, err := asynq.NewClientFromRedisClient(rdb).Enqueue(asynq.NewTask("deploy:test", nil), asynq.Queue(ns)); err != nil {
		t.Fatal(err)
	}
	mon, err := monitor.New(monitor.Config{RedisConnOpt: monitor.SharedRedis{Client: rdb}, Registry: rec.Registry,
		Inspector: insp, KeyPrefix: ns, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	_ = mon.Shutdown(context.Background())
	mfs, err := rec.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		rec.names[mf.GetName()] = true
	}
	for _, want := range []string{"dyplsq_jobs_total", "dyplsq_api_latency_seconds_bucket", "dyplsq_dead_letters",
		"dyplsq_http_requests_total", "asynq_queue_latency_seconds", "asynq_tasks_processed_total"} {
		if !rec.names[want] {
			t.Fatalf("the worker's series lack %s: %v", want, rec.names)
		}
	}
	return rec.names
}
