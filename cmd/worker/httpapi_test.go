package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/internal/safebuf"
)

func TestAPIConfigErrors(t *testing.T) {
	base := map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": "id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s3cret-value"}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"address without tokens", []string{"--api-addr", "127.0.0.1:0"}, "API_ADDR is set but API_TOKENS is not"},
		{"token without a name", []string{"--api-addr", "127.0.0.1:0", "--api-tokens", "abcdefghijklmnopqrstu"}, "API_TOKENS: entry 1 has no name"},
		{"short token", []string{"--api-addr", "127.0.0.1:0", "--api-tokens", "shop:short-tok3n"}, "shorter than 16"},
		{"name twice", []string{"--api-addr", "127.0.0.1:0", "--api-tokens", "a:abcdefghijklmnopq1,a:abcdefghijklmnopq2"}, "name a is given twice"},
		{"cert without key", []string{"--api-addr", "127.0.0.1:0", "--api-tokens", "a:abcdefghijklmnopq1", "--api-tls-cert", "x.pem"}, "API_TLS_CERT and API_TLS_KEY"},
		{"bad address", []string{"--api-addr", "nowhere", "--api-tokens", "a:abcdefghijklmnopq1"}, "API_ADDR (--api-addr)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(context.Background(), c.args, envOf(base), &out, &errb); code != 2 {
				t.Fatalf("exit %d, want 2; stderr %s", code, errb.String())
			}
			msg := strings.TrimSpace(errb.String())
			if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, c.want) || !strings.HasPrefix(msg, "worker: ") {
				t.Fatalf("stderr %q, want one line naming %q", msg, c.want)
			}
			if strings.Contains(msg, "abcdefghijklmnop") || strings.Contains(msg, "short-tok3n") {
				t.Fatal("a token was printed")
			}
		})
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, envOf(nil), &out, &errb); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	for _, v := range []string{"API_ADDR", "API_TOKENS", "API_TLS_CERT", "API_TLS_KEY", "API_RATE", "API_BURST", "API_LIVE_QUEUE", "API_BULK_QUEUE"} {
		if !strings.Contains(out.String(), v) {
			t.Errorf("--help lacks %s", v)
		}
	}
}

// TestWorkerServesTheAPI runs the worker command with API_ADDR: an update
// posted to it is applied by the same process.
func TestWorkerServesTheAPI(t *testing.T) {
	_, srv, simAddr, err := dyplsim.Start(dyplsim.Config{Seed: 3}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ns := redistest.Namespace(t)
	t.Cleanup(func() { cleanupNamespace(t, ns) })
	apiAddr := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	const tok = "crm-0123456789abcdef"
	env := map[string]string{"REDIS_URL": redistest.URL(t), "DYPLS_ENDPOINT": "http://" + simAddr,
		"ALIBABA_CLOUD_ACCESS_KEY_ID": dyplsim.DefaultAccessKeyID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": dyplsim.DefaultAccessKeySecret,
		"API_ADDR": apiAddr, "API_TOKENS": "crm:" + tok, "API_LIVE_QUEUE": ns + "-live", "DYPLSQ_KEY_PREFIX": ns}
	ctx, cancel := context.WithCancel(context.Background())
	logs := safebuf.Log(t)
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"--queues", ns + "-live:1", "--monitor-addr", fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))}, envOf(env), io.Discard, logs)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("worker exit %d", code)
		}
	}()
	b := dyplsim.SeedBinding(1)
	body := fmt.Sprintf(`{"PoolKey":%q,"SubsId":%q,"PhoneNoX":%q,"OperateType":"updateOutId","OutId":"order-9"}`, b.PoolKey, b.SubsId, b.PhoneNoX)
	var taskID string
	deadline := time.Now().Add(15 * time.Second)
	for taskID == "" {
		req, _ := http.NewRequest("POST", "http://"+apiAddr+"/v1/updates", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var acc struct {
				Items []struct {
					TaskID string `json:"taskId"`
				} `json:"items"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&acc)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted || len(acc.Items) != 1 {
				t.Fatalf("POST: %d", resp.StatusCode)
			}
			taskID = acc.Items[0].TaskID
		} else if time.Now().After(deadline) {
			t.Fatalf("the API did not answer: %v\n%s", err, logs.String())
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	for {
		req, _ := http.NewRequest("GET", "http://"+apiAddr+"/v1/updates/"+taskID, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var st struct{ State, Outcome string }
		_ = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if st.State == "ended" {
			if st.Outcome != "applied" {
				t.Fatalf("outcome %q", st.Outcome)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not applied: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(logs.String(), tok) {
		t.Fatal("the token is in the logs")
	}
	if !strings.Contains(logs.String(), `"HTTP API started"`) || !strings.Contains(logs.String(), `"token":"crm"`) {
		t.Fatalf("no API start or request line:\n%s", logs.String())
	}
}

// cleanupNamespace removes the test's queue and keys.
func cleanupNamespace(t *testing.T, ns string) {
	rdb := redistest.Client(t)
	ctx := context.Background()
	_ = asynq.NewInspectorFromRedisClient(rdb).DeleteQueue(ns+"-live", true)
	rdb.SRem(ctx, "asynq:queues", ns+"-live")
	for _, pat := range []string{ns + ":*", "asynq:{" + ns + "-*"} {
		iter := rdb.Scan(ctx, 0, pat, 500).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	}
}
