package worker_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/monitor"
	"github.com/dyplsq/dyplsq/worker"
)

// TestNothingLeaks runs jobs through every outcome, including a halt on a
// wrong secret (whose error carries the whole string-to-sign), then scans
// everything a person or a log pipeline reads: the worker's log, the error
// strings and results in Redis, dyplsq's own Redis records (payloads
// aside: they hold the numbers by design), the metrics and the UI's JSON
// API. No full phone number and no secret may appear.
func TestNothingLeaks(t *testing.T) {
	t.Parallel()
	const wrongSecret = "wrong-secret-Zq81"
	e := newEnv(t, dyplsim.Config{}, func(c *worker.Config) { c.MaxAttempts = 2 })
	numbers := map[string]bool{}
	for _, b := range e.sim.Bindings() {
		numbers[b.PhoneNoA], numbers[b.PhoneNoB], numbers[b.PhoneNoX] = true, true, true
	}
	e.start()

	// applied
	u := seed(1, "updateNoA")
	u.PhoneNoA = "13811112222"
	numbers[u.PhoneNoA] = true
	ids := []string{e.enqueue(u)}
	// dead with a message quoting numbers
	u2 := seed(2, "updateNoB")
	u2.PhoneNoB = "13922223333"
	numbers[u2.PhoneNoB] = true
	e.sim.AddFault(dyplsim.FaultRule{SubsId: u2.SubsId, Kind: "code", Code: "isv.BIND_CONFLICT",
		Message: "B 13922223333 already bound with X " + u2.PhoneNoX})
	ids = append(ids, e.enqueue(u2))
	// transient until dead, with numbers in the message
	u3 := seed(3, "updateNoA")
	u3.PhoneNoA = "01012345678"
	numbers[u3.PhoneNoA] = true
	e.sim.AddFault(dyplsim.FaultRule{SubsId: u3.SubsId, Kind: "http", Status: 502, Body: "<html>bad gateway for 01012345678</html>"})
	ids = append(ids, e.enqueue(u3))
	for _, id := range ids {
		e.waitState(id, 15*time.Second, asynq.TaskStateCompleted, asynq.TaskStateArchived)
	}

	// A second worker with a wrong secret halts on SignatureDoesNotMatch;
	// the first one stops so that it cannot take the job.
	e.w.Shutdown()
	bad, err := dypls.New(dypls.Config{Endpoint: "http://" + e.simAddr, AccessKeyID: dyplsim.DefaultAccessKeyID,
		AccessKeySecret: wrongSecret, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.api = bad
	e.cfg.WorkerID = e.ns + "-bad"
	w2 := e.start()
	u4 := seed(4, "updateNoA")
	u4.PhoneNoA = "13833334444"
	numbers[u4.PhoneNoA] = true
	id4 := e.enqueue(u4)
	eventually(t, 10*time.Second, "a halt on SignatureDoesNotMatch", func() bool { return w2.Halt().Code == "SignatureDoesNotMatch" })

	var corpus []string
	add := func(where, s string) { corpus = append(corpus, where+": "+s) }
	add("log", e.logs.String())
	add("halt", w2.Halt().Err().Error())
	// Redis: asynq's error strings and results.
	for _, id := range append(ids, id4) {
		info, err := e.insp.GetTaskInfo(e.queue, id)
		if err != nil {
			t.Fatal(err)
		}
		add("asynq LastErr", info.LastErr)
		add("asynq Result", string(info.Result))
	}
	// Redis: dyplsq's own keys, payloads aside.
	iter := e.rdb.Scan(e.ctx, 0, e.ns+":*", 1000).Iterator()
	for iter.Next(e.ctx) {
		key := iter.Val()
		switch e.rdb.Type(e.ctx, key).Val() {
		case "string":
			v := e.rdb.Get(e.ctx, key).Val()
			var m map[string]any
			if json.Unmarshal([]byte(v), &m) == nil {
				delete(m, "payload")
				delete(m, "Payload")
				b, _ := json.Marshal(m)
				v = string(b)
			}
			add(key, v)
		case "hash":
			for f, v := range e.rdb.HGetAll(e.ctx, key).Val() {
				add(key+"."+f, v)
			}
		case "zset":
			add(key, strings.Join(e.rdb.ZRange(e.ctx, key, 0, -1).Val(), " "))
		}
	}
	// Metrics.
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				add("metric label "+mf.GetName(), l.GetValue())
			}
		}
	}
	// The UI's JSON API.
	mon, err := monitor.New(monitor.Config{Addr: "127.0.0.1:0", ReadOnly: true, RedisConnOpt: monitor.SharedRedis{Client: e.rdb}, Inspector: e.insp})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mon.Handler())
	defer srv.Close()
	for _, state := range []string{"pending", "active", "scheduled", "retry", "archived", "completed"} {
		add("ui "+state, get(t, srv.URL+"/monitoring/api/queues/"+e.queue+"/"+state+"_tasks"))
	}
	for _, id := range append(ids, id4) {
		add("ui task", get(t, srv.URL+"/monitoring/api/queues/"+e.queue+"/tasks/"+id))
	}
	add("ui servers", get(t, srv.URL+"/monitoring/api/servers"))

	all := strings.Join(corpus, "\n")
	for n := range numbers {
		if n != "" && strings.Contains(all, n) {
			for _, c := range corpus {
				if strings.Contains(c, n) {
					t.Errorf("full number %s in %.300s", n, c)
				}
			}
		}
	}
	for _, secret := range []string{wrongSecret, dyplsim.DefaultAccessKeySecret} {
		if strings.Contains(all, secret) {
			t.Errorf("secret %q found", secret)
		}
	}
	// The scan must have seen the outcomes it is about.
	for _, want := range []string{"isv.BIND_CONFLICT", "HTTP.502", "SignatureDoesNotMatch", `"outcome":"applied"`, "138****2222"} {
		if !strings.Contains(all, want) {
			t.Errorf("the corpus lacks %q: the scan did not see what it should", want)
		}
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}
