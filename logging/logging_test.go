package logging

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	var b bytes.Buffer
	log, err := New("warn", "json", &b)
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Msg("hidden")
	log.Warn().Msg("shown")
	if strings.Contains(b.String(), "hidden") || !strings.Contains(b.String(), `"message":"shown"`) {
		t.Fatalf("output %s", b.String())
	}
	if _, err := New("loud", "json", &b); err == nil || !strings.Contains(err.Error(), "LOG_LEVEL") {
		t.Fatalf("err %v", err)
	}
	if _, err := New("info", "xml", &b); err == nil || !strings.Contains(err.Error(), "LOG_FORMAT") {
		t.Fatalf("err %v", err)
	}
}

func TestMillisecondTimestamps(t *testing.T) {
	var b bytes.Buffer
	log, err := New("info", "json", &b)
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Msg("x")
	var m map[string]string
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`T\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$`).MatchString(m["time"]) {
		t.Fatalf("time %q has no milliseconds", m["time"])
	}
	if _, err := time.Parse(TimeFormat, m["time"]); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	log, _ = New("info", "console", &b)
	log.Info().Msg("x")
	if !regexp.MustCompile(`^\S+T\d\d:\d\d:\d\d\.\d{3}`).MatchString(b.String()) {
		t.Fatalf("console line %q has no milliseconds", b.String())
	}
}

// The console format writes colour codes to a terminal only.
func TestConsoleWithoutColourOffTerminal(t *testing.T) {
	var b bytes.Buffer
	log, _ := New("info", "console", &b)
	log.Warn().Str("code", "isv.X").Msg("plain")
	if strings.Contains(b.String(), "\x1b[") {
		t.Fatalf("colour codes in %q", b.String())
	}
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	log, _ = New("info", "console", f)
	log.Warn().Msg("file")
	out, _ := os.ReadFile(f.Name())
	if strings.Contains(string(out), "\x1b[") || !strings.Contains(string(out), "file") {
		t.Fatalf("colour codes in a file: %q", out)
	}
}
