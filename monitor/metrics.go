package monitor

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/dyplsq/dyplsq/mask"
	"github.com/hibiken/asynq"
	"github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// queueCollector is asynq's x/metrics queue collector with its
// descriptors declared up front. The original describes itself by
// collecting, which queries Redis (and logs through the standard logger
// when Redis is down) at registration time; this one registers without any
// I/O, and the registry can tell when the series are already there.
type queueCollector struct {
	*metrics.QueueMetricsCollector
}

// queueDescs declare the series x/metrics collects, with the same names,
// help and labels, so that registration detects a clash or a second
// registration without querying Redis. (A pedantic registry in the tests
// checks the names against what the collector actually sends.)
var queueDescs = []*prometheus.Desc{
	prometheus.NewDesc("asynq_tasks_enqueued_total", "Number of tasks enqueued; broken down by queue and state.", []string{"queue", "state"}, nil),
	prometheus.NewDesc("asynq_queue_size", "Number of tasks in a queue", []string{"queue"}, nil),
	prometheus.NewDesc("asynq_queue_latency_seconds", "Number of seconds the oldest pending task is waiting in pending state to be processed.", []string{"queue"}, nil),
	prometheus.NewDesc("asynq_queue_memory_usage_approx_bytes", "Number of memory used by a given queue (approximated number by sampling).", []string{"queue"}, nil),
	prometheus.NewDesc("asynq_tasks_processed_total", "Number of tasks processed (both succeeded and failed); broken down by queue", []string{"queue"}, nil),
	prometheus.NewDesc("asynq_tasks_failed_total", "Number of tasks failed; broken down by queue", []string{"queue"}, nil),
	prometheus.NewDesc("asynq_queue_paused_total", "Number of queues paused", []string{"queue"}, nil),
}

// Describe sends the fixed descriptors.
func (queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range queueDescs {
		ch <- d
	}
}

// registerQueueMetrics adds asynq's queue series to reg, once: a registry
// that already has them keeps its collector.
func registerQueueMetrics(reg *prometheus.Registry, insp *asynq.Inspector) error {
	err := reg.Register(queueCollector{metrics.NewQueueMetricsCollector(insp)})
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		return nil
	}
	return err
}

// metricsHandler serves reg. A collector that fails does not hide the
// series of the others.
func metricsHandler(reg *prometheus.Registry, log zerolog.Logger) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      promLogger{log},
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg,
	})
}

// promLogger passes promhttp's error lines to zerolog.
type promLogger struct{ l zerolog.Logger }

func (p promLogger) Println(v ...any) {
	p.l.Warn().Msg("metrics: " + mask.Text(fmt.Sprint(v...)))
}
