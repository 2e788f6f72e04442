package enqueuecli

import (
	"strings"
	"testing"
	"time"
)

func TestProblemPrinterCapsOnATerminal(t *testing.T) {
	var b strings.Builder
	p := &problemPrinter{w: &b, file: "f.csv", limit: 3}
	p.row(2, []string{"SubsId: required", "PhoneNoX: required"})
	p.row(5, []string{"PhoneNoA: bad"})
	p.row(9, []string{"PhoneNoA: bad", "PhoneNoB: bad"})
	p.row(12, []string{"OperateType: bad"})
	p.finish()
	want := "f.csv:2: SubsId: required\nf.csv:2: PhoneNoX: required\nf.csv:5: PhoneNoA: bad\n" +
		"f.csv: … and 3 more problems in 2 more rows, not shown on a terminal (redirect stderr to a file to see them all, e.g. 2>problems.txt)\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	p = &problemPrinter{w: &b, file: "f.csv"}
	for i := range 100 {
		p.row(i+2, []string{"x"})
	}
	p.finish()
	if strings.Count(b.String(), "\n") != 100 {
		t.Errorf("without a cap every problem prints: %d lines", strings.Count(b.String(), "\n"))
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2030, 1, 10, 12, 0, 0, 0, time.Local)
	cases := map[string]time.Time{
		"36h":                  now.Add(-36 * time.Hour),
		"7d":                   now.Add(-7 * 24 * time.Hour),
		"1.5d":                 now.Add(-36 * time.Hour),
		"2030-01-02":           time.Date(2030, 1, 2, 0, 0, 0, 0, time.Local),
		"2030-01-02 15:04":     time.Date(2030, 1, 2, 15, 4, 0, 0, time.Local),
		"2030-01-02 15:04:05":  time.Date(2030, 1, 2, 15, 4, 5, 0, time.Local),
		"2030-01-02T15:04:05Z": time.Date(2030, 1, 2, 15, 4, 5, 0, time.UTC),
	}
	for in, want := range cases {
		got, err := parseWhen(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "-3h", "2030-13-01"} {
		if _, err := parseWhen(bad, now); err == nil {
			t.Errorf("parseWhen(%q) accepted", bad)
		}
	}
}

func TestCommandLineLeavesSecretsOut(t *testing.T) {
	got := commandLine("enqueue", []string{"--redis-password", "s3cret", "--redis-password=x", "--queue", "my queue", "it's.csv",
		"--redis-url", "redis://:pw@h:1/0", "-redis-url=redis://u:pw2@h:2/0"})
	if got != `enqueue --queue 'my queue' 'it'\''s.csv' --redis-url redis://:xxxxx@h:1/0 --redis-url redis://u:xxxxx@h:2/0` {
		t.Errorf("got %s", got)
	}
}

func TestWrapList(t *testing.T) {
	got := wrapList([]string{"alpha", "beta", "gamma", "delta"}, 2, 16)
	if got != "alpha, beta,\n  gamma, delta" {
		t.Errorf("got %q", got)
	}
}
