package worker_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/mask"
	"github.com/dyplsq/dyplsq/tasks"
	"github.com/dyplsq/dyplsq/worker"
)

// TestHostileQueueContent puts on the live queue, with asynq's own client
// and bypassing package tasks, what someone else's code could: truncated
// JSON, a 10 MB payload, wrong types, a valid payload under another task
// type, phone numbers split by control characters. Each ends dead with a
// code saying why, a normal job queued after them is applied, and no log
// line shows a phone number, even with its control characters removed.
func TestHostileQueueContent(t *testing.T) {
	t.Parallel()
	e := newStartedEnv(t)
	client := asynq.NewClientFromRedisClient(e.rdb)
	b := dyplsim.SeedBinding(3)
	valid := `{"PoolKey":"` + b.PoolKey + `","SubsId":"` + b.SubsId + `","PhoneNoX":"` + b.PhoneNoX + `","OperateType":"updateNoA","PhoneNoA":"13800138000"}`
	huge := `{"SubsId":"` + b.SubsId + `","PhoneNoX":"` + b.PhoneNoX + `","OperateType":"updateOutId","OutId":"` +
		strings.Repeat("13800138000 ", 10<<20/12) + `"}`
	hostile := []struct{ name, typ, payload, code string }{
		{"truncated", tasks.TypeUpdateSubscription, valid[:len(valid)-20], worker.CodeMalformed},
		{"10 MB", tasks.TypeUpdateSubscription, huge, worker.CodeMalformed},
		{"wrong types", tasks.TypeUpdateSubscription, `{"SubsId":{"n":13800138000},"PhoneNoX":["13800138000"],"OperateType":true}`, worker.CodeMalformed},
		{"other type", "dypls:13800138000", valid, worker.CodeUnknownType},
		{"control characters", tasks.TypeUpdateSubscription, `{"PoolKey":"` + b.PoolKey + `","SubsId":"` + b.SubsId + `","PhoneNoX":"` +
			b.PhoneNoX + `","OperateType":"updateNoA","PhoneNoA":"138\u00000013\u00078000"}`, worker.CodeMalformed},
		{"control characters in a key", tasks.TypeUpdateSubscription, `{"SubsId":"1","PhoneNoX":"1","OperateType":"updateNoA","138\t0013\b8000":1}`, worker.CodeMalformed},
	}
	ids := make([]string, len(hostile))
	for i, h := range hostile {
		info, err := client.Enqueue(asynq.NewTask(h.typ, []byte(h.payload)), asynq.Queue(e.queue), asynq.MaxRetry(5))
		if err != nil {
			t.Fatalf("%s: %v", h.name, err)
		}
		ids[i] = info.ID
	}
	u := outIDUpdate(7, "after-hostile")
	good := e.enqueue(u)
	for i, h := range hostile {
		e.waitState(ids[i], 20*time.Second, asynq.TaskStateArchived)
		rec := e.deadRecord(ids[i])
		if rec.Code != h.code {
			t.Errorf("%s: dead with %s (%s), want %s", h.name, rec.Code, rec.Message, h.code)
		}
		if rec.Message == "" || mask.Text(rec.Message) != rec.Message {
			t.Errorf("%s: message %q: empty or holds a phone number", h.name, rec.Message)
		}
	}
	if r := result(t, e.waitState(good, 20*time.Second, asynq.TaskStateCompleted)); r.Outcome != worker.OutcomeApplied {
		t.Fatalf("job after the hostile ones: %+v", r)
	}
	if strings.Contains(e.logs.String(), "13800138000") {
		t.Error("a log line holds 13800138000")
	}
	for _, line := range strings.Split(e.logs.String(), "\n") {
		var v any
		if json.Unmarshal([]byte(line), &v) != nil {
			continue
		}
		if s := unmaskedString(v); s != "" {
			t.Errorf("log line shows a phone number in %q: %.300s", s, line)
		}
	}
}

// unmaskedString returns the first string (key or value) in v that holds a
// phone number once its control characters are removed, or "".
func unmaskedString(v any) string {
	switch v := v.(type) {
	case string:
		s := strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return -1
			}
			return r
		}, v)
		if mask.Text(s) != s {
			return v
		}
	case []any:
		for _, x := range v {
			if s := unmaskedString(x); s != "" {
				return s
			}
		}
	case map[string]any:
		for k, x := range v {
			if s := unmaskedString(k); s != "" {
				return s
			}
			if s := unmaskedString(x); s != "" {
				return s
			}
		}
	}
	return ""
}
