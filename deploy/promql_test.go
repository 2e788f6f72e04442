package deploy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// promql parses expressions as Prometheus does.
var promql = parser.NewParser(parser.Options{})

// gauges named like counters: asynq sends the tasks in each state now and
// whether a queue is paused under names ending in _total.
var gaugesNamedTotal = map[string]bool{"asynq_tasks_enqueued_total": true, "asynq_queue_paused_total": true}

// grafanaVars are the dashboard's built-in variables, replaced by a
// duration before parsing.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// seriesOf parses expr and returns the series it selects. It fails when a
// selector names no series, or when a counter-only function (rate,
// increase, irate) is applied to a gauge named like a counter.
func seriesOf(expr string) ([]string, error) {
	e, err := promql.ParseExpr(grafanaVars.Replace(expr))
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	var problem error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			name := n.Name
			for _, m := range n.LabelMatchers {
				if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
			if name == "" {
				problem = fmt.Errorf("a selector without a series name: %s", n)
			}
			names[name] = true
		case *parser.Call:
			switch n.Func.Name {
			case "rate", "irate", "increase":
				for _, s := range selectorsIn(n) {
					if gaugesNamedTotal[s] {
						problem = fmt.Errorf("%s applied to %s, a gauge", n.Func.Name, s)
					}
				}
			}
		}
		return nil
	})
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, problem
}

func selectorsIn(n parser.Node) []string {
	var out []string
	parser.Inspect(n, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			out = append(out, vs.Name)
		}
		return nil
	})
	return out
}
