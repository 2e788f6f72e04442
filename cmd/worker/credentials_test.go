package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/internal/safebuf"
	"github.com/dyplsq/dyplsq/tasks"
)

// TestWorkerTakesCredentialsFromTheChain runs the worker command with no
// AccessKey and ALIBABA_CLOUD_CREDENTIALS_URI pointing at the simulator,
// whose STS credentials expire every 700 ms: the start log names the
// source (and no secret), and jobs keep applying across rotations.
func TestWorkerTakesCredentialsFromTheChain(t *testing.T) {
	sim, srv, simAddr, err := dyplsim.Start(dyplsim.Config{Seed: 12, STSLifetime: 700 * time.Millisecond}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	sim.SetSTS(0, time.Hour, "", 0)
	ns := redistest.Namespace(t)
	t.Cleanup(func() { cleanupNamespace(t, ns) })
	env := dyplsim.CredentialsURIOnlyEnv("http://"+simAddr+"/_sim/credentials", t.TempDir())
	env["REDIS_URL"], env["DYPLS_ENDPOINT"], env["DYPLSQ_KEY_PREFIX"] = redistest.URL(t), "http://"+simAddr, ns
	for k, v := range env {
		t.Setenv(k, v)
	}
	monAddr := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	logs := safebuf.Log(t)
	done := make(chan int)
	go func() {
		args := []string{"--queues", ns + "-live:1", "--monitor-addr", monAddr}
		done <- run(ctx, args, os.Getenv, io.Discard, logs)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("worker exit %d", code)
		}
	}()
	rdb := redistest.Client(t)
	prod := &tasks.Producer{Client: asynq.NewClientFromRedisClient(rdb), Redis: rdb, Queue: ns + "-live", KeyPrefix: ns}
	for i := 1; i <= 12; i++ {
		b := dyplsim.SeedBinding(i)
		u := tasks.Update{PoolKey: b.PoolKey, SubsId: b.SubsId, PhoneNoX: b.PhoneNoX, OperateType: "updateOutId", OutId: fmt.Sprintf("chain-%d", i)}
		if _, err := prod.Enqueue(ctx, u); err != nil {
			t.Fatal(err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	deadline := time.Now().Add(15 * time.Second)
	for i := 1; i <= 12; i++ {
		for {
			b, _ := sim.Binding(dyplsim.SeedBinding(i).SubsId)
			if b.OutId == fmt.Sprintf("chain-%d", i) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("binding %d not updated:\n%s", i, logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	out := logs.String()
	if !strings.Contains(out, `"credentials":"default/credential_uri"`) || !strings.Contains(out, `"credentials source"`) {
		t.Errorf("no start line naming the source:\n%s", out)
	}
	if st := sim.STS(); st.Issued < 3 || st.Expired < 1 {
		t.Errorf("want rotations met by expired answers: %+v", st)
	}
	if strings.Contains(out, "CAIS") || strings.Contains(out, "halted") {
		t.Errorf("a token in the logs, or a halt:\n%s", out)
	}
	// Nor in what the monitor serves: readiness, metrics, the dyplsq page.
	var cur struct{ AccessKeySecret string }
	if r, err := http.Get("http://" + simAddr + "/_sim/credentials"); err == nil {
		_ = json.NewDecoder(r.Body).Decode(&cur)
		r.Body.Close()
	}
	for _, path := range []string{"/readyz", "/metrics", "/dyplsq/"} {
		r, err := http.Get("http://" + monAddr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, r.StatusCode, body)
		}
		b := string(body)
		if strings.Contains(b, "CAIS") || strings.Contains(b, "STS.") || cur.AccessKeySecret != "" && strings.Contains(b, cur.AccessKeySecret) {
			t.Errorf("GET %s shows a token, an STS AccessKeyId or the secret:\n%s", path, b)
		}
	}
}
