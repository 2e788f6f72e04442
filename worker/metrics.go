package worker

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the worker's own Prometheus series, beside asynq's queue
// series. Labels never carry phone numbers: codes, outcomes and actions
// only. README.md lists them.
type Metrics struct {
	Jobs        *prometheus.CounterVec   // dyplsq_jobs_total{outcome,code}: one per job, at its end
	Retries     *prometheus.CounterVec   // dyplsq_job_retries_total{reason,code}: attempts that sent a job back to the queue
	JobLatency  *prometheus.HistogramVec // dyplsq_job_latency_seconds{outcome}: enqueue to outcome
	Calls       *prometheus.CounterVec   // dyplsq_api_calls_total{action,code,class}
	Latency     *prometheus.HistogramVec // dyplsq_api_latency_seconds{action}
	DeadCreated prometheus.Counter       // dyplsq_dead_letters_created_total
	Halted      *prometheus.GaugeVec     // dyplsq_halted{code}
	HaltedSince prometheus.Gauge         // dyplsq_halted_since_timestamp_seconds
	LimitRate   prometheus.Gauge         // dyplsq_limiter_rate_per_second
}

// NewMetrics creates the series and registers them on reg (nil: not
// registered). dyplsq_halted starts at 0 (code ""), so that it is there
// before any halt.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dyplsq_jobs_total",
			Help: "Jobs that ended, one per job, by outcome (applied, superseded, dead) and code.",
		}, []string{"outcome", "code"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dyplsq_job_retries_total",
			Help: "Attempts that sent a job back to the queue, by reason (throttled, transient, halted, busy) and code.",
		}, []string{"reason", "code"}),
		JobLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dyplsq_job_latency_seconds",
			Help:    "Time from a job's enqueue (or requeue) to its outcome, by outcome.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600},
		}, []string{"outcome"}),
		Calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dyplsq_api_calls_total",
			Help: "Dyplsapi calls by action, answer code and class.",
		}, []string{"action", "code", "class"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dyplsq_api_latency_seconds",
			Help:    "Dyplsapi call latency.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"action"}),
		DeadCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dyplsq_dead_letters_created_total",
			Help: "Dead-letter records this worker created (by the handler or the sweep of the archive).",
		}),
		Halted: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dyplsq_halted",
			Help: "1 with the code while this worker is halted by an account-wide code; 0 with code \"\" otherwise.",
		}, []string{"code"}),
		HaltedSince: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dyplsq_halted_since_timestamp_seconds",
			Help: "Unix time the current halt began; 0 when not halted.",
		}),
		LimitRate: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dyplsq_limiter_rate_per_second",
			Help: "Current shared UpdateSubscription rate limit, calls per second (0: unlimited).",
		}),
	}
	m.Halted.WithLabelValues("").Set(0)
	if reg != nil {
		reg.MustRegister(m.Jobs, m.Retries, m.JobLatency, m.Calls, m.Latency, m.DeadCreated, m.Halted, m.HaltedSince, m.LimitRate)
	}
	return m
}
