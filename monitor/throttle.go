package monitor

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The series the dyplsq page reads from the worker's registry. The worker
// registers them (package worker, metrics.go); the monitor only reads them
// by name, so it does not import the worker.
const (
	seriesCalls       = "dyplsq_api_calls_total"
	seriesLimiterRate = "dyplsq_limiter_rate_per_second"
	limitedAction     = "UpdateSubscription"
	throttledClass    = "throttled"
)

// callSample is this process's count of UpdateSubscription calls, and of
// those answered with a throttling code, at one time.
type callSample struct {
	at              time.Time
	calls, throttle float64
}

// callSamples keeps samples of the call counters over the last keep, so
// that the page can tell the throttled share over the last minutes: the
// counters only ever grow, and the share over a span is the difference of
// two samples.
type callSamples struct {
	mu      sync.Mutex
	keep    time.Duration
	samples []callSample // oldest first
}

// add records s and drops samples older than keep, except the newest of
// them, which still bounds the whole span.
func (c *callSamples) add(s callSample) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.samples = append(c.samples, s)
	cut := 0
	for cut+1 < len(c.samples) && s.at.Sub(c.samples[cut+1].at) >= c.keep {
		cut++
	}
	c.samples = c.samples[cut:]
}

// share is the throttled share of the calls between the sample nearest to
// span before now (or the oldest kept, if none is that old) and the
// newest. It returns the span actually covered and the calls in it.
func (c *callSamples) share(span time.Duration) (covered time.Duration, calls, throttled float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.samples) < 2 {
		return 0, 0, 0
	}
	last := c.samples[len(c.samples)-1]
	first := c.samples[0]
	for _, s := range c.samples {
		if last.at.Sub(s.at) < span {
			break
		}
		first = s
	}
	return last.at.Sub(first.at), last.calls - first.calls, last.throttle - first.throttle
}

// limiterStats reads, from the registry, this process's UpdateSubscription
// calls and throttled calls so far, and the shared rate its limiter last
// read (ok false when the series is absent: no limiter in this process).
func limiterStats(g prometheus.Gatherer) (s callSample, rate float64, ok bool, err error) {
	s.at = time.Now()
	if g == nil {
		return s, 0, false, nil
	}
	mfs, err := g.Gather()
	for _, mf := range mfs {
		switch mf.GetName() {
		case seriesLimiterRate:
			for _, m := range mf.GetMetric() {
				rate, ok = m.GetGauge().GetValue(), true
			}
		case seriesCalls:
			for _, m := range mf.GetMetric() {
				var action, class string
				for _, l := range m.GetLabel() {
					switch l.GetName() {
					case "action":
						action = l.GetValue()
					case "class":
						class = l.GetValue()
					}
				}
				if action != limitedAction {
					continue
				}
				v := m.GetCounter().GetValue()
				s.calls += v
				if class == throttledClass {
					s.throttle += v
				}
			}
		}
	}
	return s, rate, ok, err
}
