package worker

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the worker's own Prometheus series, beside asynq's queue
// series. Labels never carry phone numbers: codes, outcomes and actions
// only.
type Metrics struct {
	Jobs       *prometheus.CounterVec   // dyplsq_jobs_total{outcome,code}
	Calls      *prometheus.CounterVec   // dyplsq_api_calls_total{action,code,class}
	Latency    *prometheus.HistogramVec // dyplsq_api_latency_seconds{action}
	Superseded prometheus.Counter       // dyplsq_superseded_total
	Throttled  prometheus.Counter       // dyplsq_throttled_total
	Halted     *prometheus.GaugeVec     // dyplsq_halted{code}
	LimitRate  prometheus.Gauge         // dyplsq_limiter_rate
}

// NewMetrics creates the series and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dyplsq_jobs_total",
			Help: "Job attempts by outcome (applied, superseded, dead, throttled, transient, halted) and code.",
		}, []string{"outcome", "code"}),
		Calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dyplsq_api_calls_total",
			Help: "Dyplsapi calls by action, answer code and class.",
		}, []string{"action", "code", "class"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dyplsq_api_latency_seconds",
			Help:    "Dyplsapi call latency.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"action"}),
		Superseded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dyplsq_superseded_total",
			Help: "Jobs that ended superseded by a newer version of the same binding field, without an API call.",
		}),
		Throttled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dyplsq_throttled_total",
			Help: "Throttling answers (isv.FLOW_LIMIT, Throttling*) received.",
		}),
		Halted: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dyplsq_halted",
			Help: "1 while this worker is halted by an account-wide code, with that code.",
		}, []string{"code"}),
		LimitRate: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dyplsq_limiter_rate",
			Help: "Current shared UpdateSubscription rate limit, calls per second (0: unlimited).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Jobs, m.Calls, m.Latency, m.Superseded, m.Throttled, m.Halted, m.LimitRate)
	}
	return m
}
