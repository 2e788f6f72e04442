package worker_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/worker"
)

// logLines returns the env's JSON log lines whose message is msg.
func logLines(t *testing.T, e *env, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(e.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// A dead job's line keeps the API's message under its own key, next to the
// line's own message; the harness's log sink fails the test on any line
// that repeats a key.
func TestDeadJobLogKeepsTheAPIMessage(t *testing.T) {
	t.Parallel()
	e := newStartedEnv(t)
	u := seed(9999, "updateNoA") // no such binding
	u.PhoneNoA = "13800001111"
	id := e.enqueue(u)
	e.waitState(id, 10*time.Second, asynq.TaskStateArchived)
	rec := e.deadRecord(id)
	var lines []map[string]any
	eventually(t, 5*time.Second, "the job dead line", func() bool {
		lines = logLines(t, e, "job dead")
		return len(lines) == 1
	})
	l := lines[0]
	if l["api_message"] != rec.Message || rec.Message == "" || l["code"] != rec.Code || l["component"] != "worker" {
		t.Fatalf("line %v, record message %q", l, rec.Message)
	}
	if strings.Contains(e.logs.String(), "13800001111") {
		t.Fatal("the log holds a full number")
	}
}

// A dead job's line uses one key style (snake_case), gives its duration in
// milliseconds, and asynq does not warn again about the same death.
func TestDeadJobLogStyle(t *testing.T) {
	t.Parallel()
	e := newStartedEnv(t)
	u := outIDUpdate(9997, "style") // no such binding
	id := e.enqueue(u)
	e.waitState(id, 10*time.Second, asynq.TaskStateArchived)
	var lines []map[string]any
	eventually(t, 5*time.Second, "the job dead line", func() bool {
		lines = logLines(t, e, "job dead")
		return len(lines) == 1
	})
	l := lines[0]
	if _, ok := l["duration_ms"].(float64); !ok {
		t.Errorf("no duration_ms in %v", l)
	}
	for k := range l {
		if strings.ToLower(k) != k {
			t.Errorf("key %q is not snake_case", k)
		}
	}
	time.Sleep(200 * time.Millisecond)
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, "Retry exhausted") && !strings.Contains(line, `"level":"debug"`) {
			t.Errorf("asynq repeats the death above debug level: %s", line)
		}
	}
}

// Throttling answers and the changes of the shared rate they cause are
// logged at debug level only.
func TestThrottlesAndRateChangesAtDebug(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dyplsim.Config{}, func(c *worker.Config) { c.QPS = 100 })
	// One throttling answer for each of six bindings: spread over bindings,
	// so the shared rate is cut (one job throttled six times would not).
	for i := 1; i <= 6; i++ {
		e.sim.AddFault(dyplsim.FaultRule{Action: "UpdateSubscription", SubsId: seed(i, "").SubsId, Kind: "code", Code: "isv.FLOW_LIMIT", Count: 1})
	}
	e.start()
	var ids []string
	for i := 1; i <= 6; i++ {
		u := outIDUpdate(i, "throttled")
		ids = append(ids, e.enqueue(u))
	}
	for _, id := range ids {
		e.waitState(id, 20*time.Second, asynq.TaskStateCompleted)
	}
	throttled, changed := logLines(t, e, "job throttled"), logLines(t, e, "shared rate limit changed")
	if len(throttled) == 0 || len(changed) == 0 {
		t.Fatalf("%d throttle lines, %d rate change lines; want both", len(throttled), len(changed))
	}
	for _, l := range append(throttled, changed...) {
		if l["level"] != "debug" {
			t.Errorf("not at debug: %v", l)
		}
	}
}
