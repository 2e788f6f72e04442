package deploy

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

type dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int        `json:"id"`
	Type       string     `json:"type"`
	Title      string     `json:"title"`
	Datasource datasource `json:"datasource"`
	Targets    []struct {
		RefID      string     `json:"refId"`
		Expr       string     `json:"expr"`
		Datasource datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// TestDashboard checks that every panel query of deploy/grafana/dyplsq.json
// parses as PromQL, names only series the worker serves, and queries the
// data source provisioned beside it; and that the dashboard covers what an
// operator looks for.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/dyplsq.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	uid := provisionedUID(t)
	known := workerSeries(t)
	used := map[string]bool{}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			if p.Datasource.UID != uid {
				t.Errorf("panel %q queries data source %q, want the provisioned %q", p.Title, p.Datasource.UID, uid)
			}
			for _, q := range p.Targets {
				names, err := seriesOf(q.Expr)
				if err != nil {
					t.Errorf("panel %q query %s: %s: %v", p.Title, q.RefID, q.Expr, err)
				}
				for _, n := range names {
					used[n] = true
					if !known[n] {
						t.Errorf("panel %q query %s names %s, which the worker does not export", p.Title, q.RefID, n)
					}
				}
			}
		}
	}
	walk(d.Panels)
	for _, want := range []string{"dyplsq_jobs_total", "dyplsq_job_retries_total", "dyplsq_api_calls_total",
		"dyplsq_api_latency_seconds_bucket", "dyplsq_limiter_rate_per_second", "dyplsq_dead_letters",
		"dyplsq_dead_letters_created_total", "dyplsq_dead_letter_oldest_age_seconds", "dyplsq_halted",
		"asynq_queue_size", "asynq_queue_latency_seconds", "asynq_tasks_enqueued_total"} {
		if !used[want] {
			t.Errorf("no panel shows %s", want)
		}
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard uid %q, title %q", d.UID, d.Title)
	}
}

// provisionedUID is the uid of the Prometheus data source Grafana is given.
func provisionedUID(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("grafana/provisioning/datasources/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var ds struct {
		Datasources []struct {
			UID  string `json:"uid"`
			Type string `json:"type"`
			URL  string `json:"url"`
		} `json:"datasources"`
	}
	if err := yaml.UnmarshalStrict(b, &ds, yaml.DisallowUnknownFields); err != nil {
		// Grafana's file has fields this struct does not list: read leniently.
		if err := yaml.Unmarshal(b, &ds); err != nil {
			t.Fatal(err)
		}
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].UID == "" {
		t.Fatalf("provisioned data sources: %+v", ds.Datasources)
	}
	return ds.Datasources[0].UID
}
