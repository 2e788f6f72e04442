package logging

import (
	"bytes"
	"strings"
	"testing"
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
