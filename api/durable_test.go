package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/internal/redistest"
)

type durableAnswer struct {
	BatchID string `json:"batchId"`
	Items   []struct {
		TaskID       string `json:"taskId"`
		Duplicate    bool   `json:"duplicate"`
		Durable      *bool  `json:"durable"`
		DurableError *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"durableError"`
	} `json:"items"`
}

// TestDurableUpdates posts updates with ?durable=N over real HTTP to an API
// on a private primary with one replica: asking for that replica confirms
// every item, which the replica then holds; asking for two answers 202 with
// each item durable: false and why, the items queued all the same; the same
// request sent again with durable=1 queues nothing twice and confirms them;
// with the replica down nothing is confirmed. The confirmed items run.
func TestDurableUpdates(t *testing.T) {
	p := redistest.Server(t)
	host, port, _ := strings.Cut(p.Addr, ":")
	rp := redistest.Server(t, "--replicaof", host, port)
	primary := redis.NewClient(&redis.Options{Addr: p.Addr})
	replica := redis.NewClient(&redis.Options{Addr: rp.Addr})
	t.Cleanup(func() { primary.Close(); replica.Close() })
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(replica.Info(ctx, "replication").Val(), "master_link_status:up"); {
		if time.Now().After(deadline) {
			t.Fatal("replica never in sync")
		}
		time.Sleep(50 * time.Millisecond)
	}
	e := newEnvOn(t, primary, nil)
	e.startWorker()
	post := func(query, key string, items ...map[string]any) (durableAnswer, time.Duration) {
		t.Helper()
		start := time.Now()
		r := e.do("POST", "/v1/updates"+query, bearer(token), body(t, items), map[string]string{"Idempotency-Key": key})
		took := time.Since(start)
		if r.status != http.StatusAccepted {
			t.Fatalf("POST %s: %d %s", query, r.status, r.body)
		}
		a := decode[durableAnswer](t, r)
		if len(a.Items) != len(items) {
			t.Fatalf("POST %s: %d items answered, want %d: %s", query, len(a.Items), len(items), r.body)
		}
		return a, took
	}

	ok, took := post("?durable=1", "durable-1", item(1), item(2), item(3))
	for i, it := range ok.Items {
		if it.Durable == nil || !*it.Durable || it.DurableError != nil {
			t.Fatalf("item %d with one replica asked of one: %+v", i, it)
		}
		// Confirmed: the replica holds the task now, not eventually.
		if n := replica.Exists(ctx, "asynq:{"+e.live+"}:t:"+it.TaskID).Val(); n != 1 {
			t.Errorf("item %d (task %s) confirmed but not on the replica", i, it.TaskID)
		}
	}
	t.Logf("3 items confirmed by 1 replica in %s", took)

	no, took := post("?durable=2&durable_timeout=300ms", "durable-2", item(4), item(5))
	for i, it := range no.Items {
		if it.Durable == nil || *it.Durable || it.DurableError == nil || it.DurableError.Code != "not_replicated" ||
			!strings.Contains(it.DurableError.Message, "1 of 2 Redis replicas within 300ms") {
			t.Fatalf("item %d with two replicas asked of one: %+v %+v", i, it, it.DurableError)
		}
	}
	if took < 300*time.Millisecond || took > 5*time.Second {
		t.Errorf("an unconfirmed request took %s, want about its 300ms timeout", took)
	}
	if n := e.queued(e.live); n != 5 {
		t.Fatalf("%d tasks queued, want 5: unconfirmed items stay queued", n)
	}
	if !strings.Contains(e.logs.String(), `"error_code":"not_replicated"`) {
		t.Error("the request log does not say the items were not confirmed")
	}

	// Sent again with the same key: nothing queued twice, and now confirmed.
	again, _ := post("?durable=1", "durable-2", item(4), item(5))
	for i, it := range again.Items {
		if !it.Duplicate || it.TaskID != no.Items[i].TaskID || it.Durable == nil || !*it.Durable {
			t.Fatalf("item %d sent again: %+v", i, it)
		}
	}
	if n := e.queued(e.live); n != 5 {
		t.Fatalf("%d tasks queued after the same request again, want 5", n)
	}

	for _, q := range []string{"?durable=x", "?durable=-1", "?durable=17", "?durable_timeout=1s", "?durable=1&durable_timeout=1h",
		"?durable=1&durable_timeout=0s", "?durable=1&durable=2"} {
		r := e.do("POST", "/v1/updates"+q, bearer(token), body(t, item(6)), nil)
		if ae := decode[apiErr](t, r); r.status != http.StatusBadRequest || ae.Error.Code != "bad_request" || !strings.Contains(ae.Error.Message, "durable") {
			t.Errorf("POST %s: %d %s, want 400 naming durable", q, r.status, r.body)
		}
	}
	if n := e.queued(e.live); n != 5 {
		t.Fatalf("%d tasks queued after bad requests, want 5", n)
	}

	rp.Stop()
	down, _ := post("?durable=1&durable_timeout=200ms", "durable-3", item(7))
	if it := down.Items[0]; it.Durable == nil || *it.Durable || it.DurableError == nil || !strings.Contains(it.DurableError.Message, "0 of 1") {
		t.Fatalf("with the replica down: %+v %+v", it, it.DurableError)
	}

	for i, it := range ok.Items {
		if st := e.waitEnded(it.TaskID); st.Outcome != "applied" {
			t.Errorf("confirmed item %d: %+v", i, st)
		}
	}
}
