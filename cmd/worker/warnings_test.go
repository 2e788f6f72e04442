package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/internal/safebuf"
)

// persistenceWarnings are the start-up lines about Redis settings that the
// worker may log (redisconn.Warnings); each case below expects one or none.
var persistenceWarnings = map[string]string{
	"nothing":   `Redis persists nothing (appendonly no, save ""): a Redis restart loses every queued job`,
	"snapshots": "Redis persists only snapshots (appendonly no): a Redis restart loses every job queued since the last one; set appendonly yes",
	"os":        "Redis leaves the AOF to the OS (appendfsync no): a crash of the machine loses up to about 30 s of jobs; set appendfsync everysec",
	"evicts":    "Redis evicts keys (maxmemory-policy=",
	"unchecked": "could not check the Redis configuration",
}

// TestWorkerWarnsWhenPersistenceCannotKeepItsPromises starts the worker
// command against private Redis servers with each persistence setting and
// reads its log: a warning, with level warn, when a restart of Redis would
// lose queued jobs beyond what RELIABILITY.md promises, none with AOF and
// appendfsync everysec or always; and never the Redis password or the
// AccessKey secret.
func TestWorkerWarnsWhenPersistenceCannotKeepItsPromises(t *testing.T) {
	_, srv, simAddr, err := dyplsim.Start(dyplsim.Config{Seed: 1}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	const password = "redis-pa55word-not-to-log"
	cases := []struct {
		name string
		args []string
		want string // a key of persistenceWarnings, or "" for none
	}{
		{"off", []string{"--save", "", "--appendonly", "no"}, "nothing"},
		{"snapshots only", []string{"--save", "3600 1", "--appendonly", "no"}, "snapshots"},
		{"AOF left to the OS", []string{"--appendonly", "yes", "--appendfsync", "no"}, "os"},
		{"AOF everysec", []string{"--appendonly", "yes", "--appendfsync", "everysec"}, ""},
		{"AOF always", []string{"--appendonly", "yes", "--appendfsync", "always"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			red := redistest.Server(t, c.args...)
			// A password set after the start, which the server's own
			// start-up check does not know.
			rc := redis.NewClient(&redis.Options{Addr: red.Addr})
			err := rc.ConfigSet(context.Background(), "requirepass", password).Err()
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			url := strings.Replace(red.URL(), "redis://", "redis://:"+password+"@", 1)
			logs := startedWorkerLog(t, url, simAddr)
			warned := map[string]bool{}
			for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
				var l struct{ Level, Component, Message string }
				if json.Unmarshal([]byte(line), &l) != nil {
					continue
				}
				for k, w := range persistenceWarnings {
					if strings.HasPrefix(l.Message, w) {
						warned[k] = true
						if l.Level != "warn" || l.Component != "worker" {
							t.Errorf("warning logged at level %q by %q, want warn by worker: %s", l.Level, l.Component, line)
						}
					}
				}
			}
			for k := range persistenceWarnings {
				if warned[k] != (k == c.want) {
					t.Errorf("warning %q logged: %v, want %v\n%s", persistenceWarnings[k], warned[k], k == c.want, logs)
				}
			}
			if strings.Contains(logs, password) || strings.Contains(logs, dyplsim.DefaultAccessKeySecret) {
				t.Errorf("the Redis password or the AccessKey secret was logged:\n%s", logs)
			}
			if n := regexp.MustCompile(`1[3-9]\d{9}`).FindString(logs); n != "" {
				t.Errorf("a full phone number %s… in the log", n[:3])
			}
		})
	}
}

// startedWorkerLog runs the worker command against redisURL until it logged
// that it started, stops it, and returns its log.
func startedWorkerLog(t *testing.T, redisURL, simAddr string) string {
	t.Helper()
	env := map[string]string{"REDIS_URL": redisURL, "DYPLS_ENDPOINT": "http://" + simAddr, "LOG_FORMAT": "json",
		"ALIBABA_CLOUD_ACCESS_KEY_ID": dyplsim.DefaultAccessKeyID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": dyplsim.DefaultAccessKeySecret}
	logs := safebuf.Log(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	args := []string{"--queues", "persist:1", "--monitor-addr", fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))}
	go func() { done <- run(ctx, args, envOf(env), io.Discard, logs) }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), `"worker started"`) {
		select {
		case code := <-done:
			t.Fatalf("worker exited %d before it started:\n%s", code, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker did not start within 20 s:\n%s", logs.String())
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("worker exit %d after its context ended:\n%s", code, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("worker did not stop within 30 s of its context's end:\n%s", logs.String())
	}
	return logs.String()
}
