package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/dyplsapi"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/internal/safebuf"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// startRun runs the command in the background and returns its address, a
// stop function that returns the exit status, and the output buffers.
func startRun(t *testing.T, args []string, getenv func(string) string) (addr string, stop func() int, stdout, stderr *safebuf.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr = &safebuf.Buffer{}, &safebuf.Buffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, getenv, stdout, stderr) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if line, ok := strings.CutPrefix(stdout.String(), "dyplsim listening on http://"); ok {
			addr = strings.TrimSpace(line)
			break
		}
		select {
		case code := <-done:
			cancel()
			t.Fatalf("run exited with %d: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no listening line; stderr: %s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("run did not return after cancel")
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return addr, stop, stdout, stderr
}

func TestRunServesSDKAndStops(t *testing.T) {
	const secret = "s3cr3t-from-env-value"
	addr, stop, stdout, stderr := startRun(t,
		[]string{"--addr", "127.0.0.1:0", "--seed", "3", "--rand-seed", "9", "--log-level", "debug", "--qps", "100"},
		env(map[string]string{"DYPLSIM_ACCESS_KEY_SECRET": secret}))

	c, err := dyplsapi.NewClientWithOptions("cn-hangzhou", sdk.NewConfig(), credentials.NewAccessKeyCredential(dyplsim.DefaultAccessKeyID, secret))
	if err != nil {
		t.Fatal(err)
	}
	c.Domain = addr
	c.SetReadTimeout(5 * time.Second)
	defer c.Shutdown()
	b := dyplsim.SeedBinding(3)
	r := dyplsapi.CreateUpdateSubscriptionRequest()
	r.PoolKey, r.SubsId, r.PhoneNoX, r.OperateType, r.OutId = b.PoolKey, b.SubsId, b.PhoneNoX, "updateOutId", "cli"
	resp, err := c.UpdateSubscription(r)
	if err != nil || resp.Code != "OK" {
		t.Fatalf("UpdateSubscription: %v %+v", err, resp)
	}

	res, err := http.Get("http://" + addr + "/_sim/bindings")
	if err != nil {
		t.Fatal(err)
	}
	var all []dyplsim.Binding
	json.NewDecoder(res.Body).Decode(&all)
	res.Body.Close()
	if len(all) != 3 || all[2].OutId != "cli" {
		t.Fatalf("bindings %+v", all)
	}

	if code := stop(); code != 0 {
		t.Fatalf("exit %d; stderr %s", code, stderr.String())
	}
	out := stdout.String() + stderr.String()
	if strings.Contains(out, secret) {
		t.Fatal("the secret was printed")
	}
	if !strings.Contains(stderr.String(), `"message":"dyplsim started"`) || !strings.Contains(stderr.String(), `"message":"stopped"`) {
		t.Fatalf("logs: %s", stderr.String())
	}
	if n := strings.Count(stdout.String(), "\n"); n != 1 {
		t.Fatalf("stdout has %d lines: %q", n, stdout.String())
	}
}

func TestRunFaultFlags(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "faults.json")
	os.WriteFile(path, []byte(`[{"Action":"UpdateSubscription","Kind":"http","Status":502,"Count":1}]`), 0o600)
	addr, stop, _, _ := startRun(t, []string{"--addr", "127.0.0.1:0", "--faults", path,
		"--fault-rate", "1", "--fault-code", "ServiceUnavailable", "--fault-action", "QuerySubscriptionDetail", "--log-level", "error"}, env(nil))
	defer stop()
	res, err := http.Get("http://" + addr + "/_sim/faults")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var fs []dyplsim.FaultState
	if err := json.NewDecoder(res.Body).Decode(&fs); err != nil {
		t.Fatal(err)
	}
	if len(fs) != 2 || fs[0].Kind != "http" || fs[0].Status != 502 ||
		fs[1].Kind != "gateway" || fs[1].Code != "ServiceUnavailable" || fs[1].Rate != 1 || fs[1].Action != "QuerySubscriptionDetail" {
		t.Fatalf("faults %+v", fs)
	}
}

func TestRunHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--help"}, env(map[string]string{"DYPLSIM_ACCESS_KEY_SECRET": "hidden-secret"}), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	help := stdout.String()
	for _, f := range []string{"-addr", "-access-key-id", "-access-key-secret", "-qps", "-burst", "-query-qps", "-query-burst",
		"-throttle-code", "-throttle-status", "-latency", "-jitter", "-seed", "-rand-seed", "-same-value-conflicts",
		"-faults", "-fault-rate", "-fault-code", "-fault-action", "-log-level", "-log-format", "127.0.0.1:8086", "10000", "5000"} {
		if !strings.Contains(help, f) {
			t.Errorf("help lacks %q", f)
		}
	}
	if strings.Contains(help, "hidden-secret") {
		t.Error("help printed the secret")
	}
}

func TestRunBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--nope"},
		{"--qps", "-1"},
		{"--qps", "fast"},
		{"--burst", "-2"},
		{"--throttle-code", "Slow.Down"},
		{"--throttle-status", "200"},
		{"--latency", "-1s"},
		{"--seed", "-3"},
		{"--fault-rate", "2"},
		{"--fault-rate", "0.1", "--fault-code", ""},
		{"--faults", "/nonexistent/faults.json"},
		{"--log-level", "loud"},
		{"--log-format", "xml"},
		{"extra"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, env(nil), &stdout, &stderr)
		msg := stderr.String()
		if code != 2 || strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "dyplsim: ") || stdout.Len() != 0 {
			t.Errorf("%v: exit %d, stderr %q, stdout %q", args, code, msg, stdout.String())
		}
	}
}

func TestRunBadFaultsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "faults.json")
	for _, content := range []string{`{"Kind":"code"}`, `[{"Kind":"explode"}]`, `[{"Rate":3}]`} {
		os.WriteFile(path, []byte(content), 0o600)
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"--faults", path}, env(nil), &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "--faults") {
			t.Errorf("%s: exit %d, %q", content, code, stderr.String())
		}
	}
}

func TestRunListenError(t *testing.T) {
	addr, stop, _, _ := startRun(t, []string{"--addr", "127.0.0.1:0", "--log-level", "error"}, env(nil))
	defer stop()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--addr", addr}, env(nil), &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "listen") {
		t.Fatalf("exit %d, %q", code, stderr.String())
	}
}

// TestBindingsFile: --bindings stores the file's bindings at start; a bad
// file is one line and exit 2.
func TestBindingsFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "b.json")
	os.WriteFile(p, []byte(`[{"PoolKey": "FC100000000000001", "SubsId": "1000000000077777", "PhoneNoX": "17000077777", "PhoneNoA": "13800007777", "PhoneNoB": "13900007777", "ExpireDate": "2031-12-31 23:59:59"}]`), 0o644)
	addr, stop, _, _ := startRun(t, []string{"--addr", "127.0.0.1:0", "--seed", "2", "--bindings", p}, env(nil))
	defer stop()
	resp, err := http.Get("http://" + addr + "/_sim/bindings?SubsId=1000000000077777")
	if err != nil {
		t.Fatal(err)
	}
	var b dyplsim.Binding
	err = json.NewDecoder(resp.Body).Decode(&b)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || b.PhoneNoA != "13800007777" {
		t.Fatalf("binding: %d %+v %v", resp.StatusCode, b, err)
	}

	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"PoolKey": 1}`), 0o644)
	for _, f := range []string{bad, filepath.Join(dir, "missing.json")} {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"--addr", "127.0.0.1:0", "--bindings", f}, env(nil), &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), "--bindings") || strings.Count(strings.TrimSpace(errb.String()), "\n") != 0 {
			t.Errorf("%s: exit %d: %s", f, code, errb.String())
		}
	}
}
