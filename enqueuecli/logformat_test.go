package enqueuecli

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/dyplsq/dyplsq/internal/safebuf"
)

// TestJSONLogKeysOnce runs the command with JSON logs at debug against a
// Redis that refuses connections, so that go-redis's own messages are
// logged, and checks that no line repeats a key.
func TestJSONLogKeysOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	env := map[string]string{"REDIS_URL": "redis://" + addr, "LOG_FORMAT": "json", "LOG_LEVEL": "debug"}
	var out, errb safebuf.Buffer
	code := Run(context.Background(), []string{"queue", "status"}, func(k string) string { return env[k] }, strings.NewReader(""), &out, &errb)
	t.Logf("exit %d\n%s", code, errb.String())
	safebuf.CheckLog(t, errb.String())
	if !strings.Contains(errb.String(), `"component":"go-redis"`) {
		t.Fatalf("no go-redis line in the log:\n%s", errb.String())
	}
}
