package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/internal/safebuf"
	"github.com/dyplsq/dyplsq/worker"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestHelpListsEverySetting(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, envOf(nil), &out, &errb); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	for _, v := range []string{"REDIS_URL", "REDIS_CLUSTER_ADDRS", "REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_TLS", "LOG_LEVEL", "LOG_FORMAT",
		"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN", "DYPLS_ENDPOINT", "DYPLS_REGION",
		"DYPLS_QPS", "DYPLS_TIMEOUT", "WORKER_CONCURRENCY", "WORKER_QUEUES", "WORKER_SHARDS", "WORKER_POLL_INTERVAL", "JOB_MAX_AGE", "JOB_MAX_ATTEMPTS", "JOB_RETRY_FOR", "JOB_BACKOFF_BASE", "MONITOR_ADDR",
		"MONITOR_USER", "MONITOR_PASSWORD", "MONITOR_READONLY", "default 127.0.0.1:8080", "https://dyplsapi.aliyuncs.com"} {
		if !strings.Contains(out.String(), v) {
			t.Errorf("--help lacks %s", v)
		}
	}
}

func TestBadConfigIsOneLineAndExit2(t *testing.T) {
	base := map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": "id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s3cret-value"}
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"missing key id", map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s3cret-value"}, nil, "ALIBABA_CLOUD_ACCESS_KEY_ID is not set"},
		{"missing secret", map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": "id"}, nil, "ALIBABA_CLOUD_ACCESS_KEY_SECRET is not set"},
		{"bad duration", base, []string{"--job-max-age", "forever"}, "JOB_MAX_AGE (--job-max-age)"},
		{"bad concurrency", base, []string{"--concurrency", "0"}, "WORKER_CONCURRENCY (--concurrency)"},
		{"bad queues", base, []string{"--queues", "a:x"}, "WORKER_QUEUES"},
		{"bad endpoint", base, []string{"--endpoint", "ftp://x"}, "DYPLS_ENDPOINT"},
		{"both redis", mergeEnv(base, map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_CLUSTER_ADDRS": "127.0.0.1:7000"}), nil, "REDIS_URL and REDIS_CLUSTER_ADDRS"},
		{"non-loopback monitor without credentials", mergeEnv(base, map[string]string{"REDIS_URL": redistest.URL(t)}), []string{"--monitor-addr", "0.0.0.0:0"}, "MONITOR_USER"},
		{"retry budget beyond the max age", base, []string{"--job-retry-for", "48h"}, "JOB_RETRY_FOR (--job-retry-for) 48h0m0s must be below JOB_MAX_AGE"},
		{"backoff base too long", base, []string{"--job-backoff-base", "1h"}, "JOB_BACKOFF_BASE (--job-backoff-base)"},
		{"poll interval too short", base, []string{"--poll-interval", "500us"}, "WORKER_POLL_INTERVAL (--poll-interval): 500µs is out of range"},
		{"poll interval too long", base, []string{"--poll-interval", "1m"}, "WORKER_POLL_INTERVAL (--poll-interval): 1m0s is out of range"},
		{"shard count missing", base, []string{"--shards", "dyplsq-bulk"}, `WORKER_SHARDS (--shards): shard count "" of queue "dyplsq-bulk" is not a whole number ≥ 1`},
		{"too many shards", base, []string{"--shards", "dyplsq-bulk:65"}, `WORKER_SHARDS (--shards): queue "dyplsq-bulk": 65 shards, at most 64`},
		{"unknown flag", base, []string{"--nope"}, "nope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), c.args, envOf(c.env), &out, &errb)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr %s", code, errb.String())
			}
			msg := strings.TrimSpace(errb.String())
			if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, c.want) || !strings.HasPrefix(msg, "worker: ") {
				t.Fatalf("stderr %q, want one line naming %q", msg, c.want)
			}
			if strings.Contains(msg, "s3cret-value") {
				t.Fatal("the secret was printed")
			}
		})
	}
}

func mergeEnv(a, b map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		m[k] = v
	}
	return m
}

// TestBinarySIGTERM builds the worker, runs it against the simulator and
// Redis, checks its endpoints, and stops it with SIGTERM: exit status 0.
func TestBinarySIGTERM(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "worker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	_, srv, simAddr, err := dyplsim.Start(dyplsim.Config{Seed: 3}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	port := redistest.FreePort(t)
	ns := redistest.Namespace(t)
	cmd := exec.Command(bin, "--queues", ns+":1", "--monitor-addr", fmt.Sprintf("127.0.0.1:%d", port))
	cmd.Env = append(os.Environ(), "REDIS_URL="+redistest.URL(t), "DYPLS_ENDPOINT=http://"+simAddr,
		"ALIBABA_CLOUD_ACCESS_KEY_ID="+dyplsim.DefaultAccessKeyID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET="+dyplsim.DefaultAccessKeySecret,
		"LOG_FORMAT=json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
			t.Logf("readyz %d %s", resp.StatusCode, b)
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("worker never ready: %v\n%s", err, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, p := range []string{"/healthz", "/metrics", "/monitoring/"} {
		resp, err := http.Get(base + p)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", p, err, resp)
		}
		resp.Body.Close()
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("no exit after SIGTERM\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "worker stopped") {
		t.Fatalf("log lacks the stop line:\n%s", stderr.String())
	}
	// The queue is nobody's: a typo in WORKER_QUEUES would look like this.
	if !strings.Contains(stderr.String(), `"queue":"`+ns+`"`) || !strings.Contains(stderr.String(), "nothing has been queued to") {
		t.Errorf("no warning about the unused queue %s:\n%s", ns, stderr.String())
	}
	if strings.Contains(stderr.String(), dyplsim.DefaultAccessKeySecret) {
		t.Fatal("the secret was logged")
	}
	// One key per field, whichever part of the process logs.
	safebuf.CheckLog(t, stderr.String())
	if !regexp.MustCompile(`"time":"[^"]+T\d\d:\d\d:\d\d\.\d{3}`).MatchString(stderr.String()) {
		t.Errorf("no millisecond timestamps:\n%s", stderr.String())
	}
	for _, c := range []string{`"component":"asynq"`, `"component":"worker"`} {
		if !strings.Contains(stderr.String(), c) {
			t.Errorf("no line with %s:\n%s", c, stderr.String())
		}
	}
	_ = redistest.Client(t).SRem(context.Background(), "asynq:queues", ns).Err()
}

// TestShardsReachTheWorker: WORKER_SHARDS sets the worker's shard counts;
// unset, none (the worker follows the split in Redis).
func TestShardsReachTheWorker(t *testing.T) {
	env := map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": "id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s3cret-value"}
	c, err := parse(nil, envOf(env), io.Discard)
	if err != nil || len(c.worker.Shards) != 0 {
		t.Fatalf("default shards %v %v", c.worker.Shards, err)
	}
	c, err = parse(nil, envOf(mergeEnv(env, map[string]string{"WORKER_SHARDS": " dyplsq-bulk:3 , dyplsq-live:1"})), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.worker.Shards["dyplsq-bulk"] != 3 || c.worker.Shards["dyplsq-live"] != 1 || len(c.worker.Shards) != 2 {
		t.Errorf("WORKER_SHARDS gave %v", c.worker.Shards)
	}
}

// TestPollIntervalReachesTheWorker: WORKER_POLL_INTERVAL sets the worker's
// TaskCheckInterval; unset, the worker's default.
func TestPollIntervalReachesTheWorker(t *testing.T) {
	env := map[string]string{"ALIBABA_CLOUD_ACCESS_KEY_ID": "id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s3cret-value"}
	c, err := parse(nil, envOf(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.worker.TaskCheckInterval != worker.DefaultTaskCheckInterval {
		t.Errorf("default poll interval %s, want %s", c.worker.TaskCheckInterval, worker.DefaultTaskCheckInterval)
	}
	c, err = parse(nil, envOf(mergeEnv(env, map[string]string{"WORKER_POLL_INTERVAL": "250ms"})), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.worker.TaskCheckInterval != 250*time.Millisecond {
		t.Errorf("WORKER_POLL_INTERVAL=250ms gave %s", c.worker.TaskCheckInterval)
	}
}
