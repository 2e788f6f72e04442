package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/api"
	"github.com/dyplsq/dyplsq/dyplsim"
)

type accepted struct {
	BatchID string `json:"batchId"`
	Queue   string `json:"queue"`
	Items   []struct {
		Index     int    `json:"index"`
		TaskID    string `json:"taskId"`
		Version   int64  `json:"version"`
		Queue     string `json:"queue"`
		Duplicate bool   `json:"duplicate"`
	} `json:"items"`
}

type apiErr struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Details []struct {
			Index  *int   `json:"index"`
			Field  string `json:"field"`
			Reason string `json:"reason"`
		} `json:"details"`
	} `json:"error"`
}

type status struct {
	State     string            `json:"state"`
	Outcome   string            `json:"outcome"`
	Code      string            `json:"code"`
	RequestID string            `json:"requestId"`
	Message   string            `json:"message"`
	Version   int64             `json:"version"`
	Update    map[string]string `json:"update"`
}

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("answer %d is not JSON: %v\n%s", r.status, err, r.body)
	}
	return v
}

// item is seed binding i of the simulator (--seed 100) with a new A number.
func item(i int) map[string]any {
	b := dyplsim.SeedBinding(i)
	return map[string]any{"PoolKey": b.PoolKey, "SubsId": b.SubsId, "PhoneNoX": b.PhoneNoX, "OperateType": "updateNoA",
		"PhoneNoA": fmt.Sprintf("1371234%04d", i)}
}

func body(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// queued is how many tasks the queue holds in any state.
func (e *env) queued(q string) int {
	e.t.Helper()
	qs, err := e.insp.Queues()
	if err != nil {
		e.t.Fatal(err)
	}
	if !slices.Contains(qs, q) {
		return 0
	}
	qi, err := e.insp.GetQueueInfo(q)
	if err != nil {
		e.t.Fatal(err)
	}
	return qi.Pending + qi.Active + qi.Scheduled + qi.Retry + qi.Archived + qi.Completed
}

// waitEnded polls GET /v1/updates/{id} until the update has ended.
func (e *env) waitEnded(id string) status {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := e.do("GET", "/v1/updates/"+id, bearer(token), nil, nil)
		if r.status != http.StatusOK {
			e.t.Fatalf("GET update %s: %d %s", id, r.status, r.body)
		}
		st := decode[status](e.t, r)
		if st.State == api.StateEnded {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("update %s did not end: %s", id, r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestValidBatchReachesItsOutcomes(t *testing.T) {
	e := newEnv(t, nil)
	e.startWorker()
	dead := item(4)
	dead["SubsId"] = "1000000000999999" // no such binding: isv.SUBS_NOT_EXIST
	items := []map[string]any{item(1), item(2), item(3), dead}
	r := e.do("POST", "/v1/updates?queue=bulk", bearer(token), body(t, items), nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	acc := decode[accepted](t, r)
	if len(acc.Items) != 4 || acc.Queue != e.bulk || acc.BatchID == "" {
		t.Fatalf("answer %s", r.body)
	}
	for i, it := range acc.Items {
		if it.Index != i || it.Duplicate || it.Queue != e.bulk || it.TaskID == "" {
			t.Fatalf("item %d: %+v", i, it)
		}
		if i > 0 && it.Version != acc.Items[i-1].Version+1 {
			t.Fatalf("versions do not follow the array's order: %s", r.body)
		}
	}
	for i, it := range acc.Items[:3] {
		st := e.waitEnded(it.TaskID)
		if st.Outcome != "applied" || st.Code != "OK" || st.RequestID == "" || st.Version != it.Version {
			t.Fatalf("item %d: %+v", i, st)
		}
		want := items[i]["PhoneNoA"].(string)
		if b, _ := e.sim.Binding(items[i]["SubsId"].(string)); b.PhoneNoA != want {
			t.Fatalf("the simulator holds A %s, want %s", b.PhoneNoA, want)
		}
		if st.Update["PhoneNoA"] != want[:3]+"****"+want[7:] {
			t.Fatalf("number not masked: %+v", st.Update)
		}
	}
	st := e.waitEnded(acc.Items[3].TaskID)
	if st.Outcome != "dead" || st.Code != "isv.SUBS_NOT_EXIST" || st.RequestID == "" || st.Message == "" {
		t.Fatalf("dead item: %+v", st)
	}
	var bs struct {
		State  string           `json:"state"`
		Done   bool             `json:"done"`
		Source string           `json:"source"`
		Counts map[string]int64 `json:"counts"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.do("GET", "/v1/batches/"+acc.BatchID, bearer(token), nil, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET batch: %d %s", r.status, r.body)
		}
		bs = decode[struct {
			State  string           `json:"state"`
			Done   bool             `json:"done"`
			Source string           `json:"source"`
			Counts map[string]int64 `json:"counts"`
		}](t, r)
		if bs.Done || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !bs.Done || bs.State != "queued" || bs.Source != "api" || bs.Counts["applied"] != 3 || bs.Counts["dead"] != 1 || bs.Counts["queued"] != 4 {
		t.Fatalf("batch %+v", bs)
	}
	for _, it := range items {
		if strings.Contains(e.logs.String(), it["PhoneNoA"].(string)) {
			t.Fatal("a full phone number is in the logs")
		}
	}
	if strings.Contains(e.logs.String(), token) {
		t.Fatal("the token is in the logs")
	}
	if n := e.requests("POST /v1/updates", "202"); n != 1 {
		t.Fatalf("dyplsq_http_requests_total{route=POST /v1/updates,status=202} = %v, want 1", n)
	}
}

// requests reads dyplsq_http_requests_total{route,status} from the registry.
func (e *env) requests(route, code string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "dyplsq_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["route"] == route && l["status"] == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// An update whose task an operator archived in the web UI after it had
// completed (asynq's ArchiveTask archives a completed task too) still
// reads as it ended: applied, with its RequestId, not dead.
func TestStatusOfATaskArchivedAfterItsJobEnded(t *testing.T) {
	e := newEnv(t, nil)
	e.startWorker()
	r := e.do("POST", "/v1/updates", bearer(token), body(t, []map[string]any{item(5)}), nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	it := decode[accepted](t, r).Items[0]
	before := e.waitEnded(it.TaskID)
	if before.Outcome != "applied" {
		t.Fatalf("update: %+v", before)
	}
	if err := e.insp.ArchiveTask(it.Queue, it.TaskID); err != nil {
		t.Fatal(err)
	}
	st := e.waitEnded(it.TaskID)
	if st.Outcome != "applied" || st.RequestID != before.RequestID || st.Version != it.Version {
		t.Fatalf("after the archive: %+v, want applied as before (%+v)", st, before)
	}
}
