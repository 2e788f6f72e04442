package envflag

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestPrecedenceAndErrors(t *testing.T) {
	env := map[string]string{"A_NAME": "from-env", "A_NUM": "7", "A_DUR": "2s"}
	s := New("x", "usage", func(k string) string { return env[k] })
	name := s.String("A_NAME", "name", "def", "a name")
	num := s.Int("A_NUM", "num", 1, 1, "a number")
	dur := s.Duration("A_DUR", "dur", time.Second, "a duration")
	flag := s.Bool("A_FLAG", "flag", true, "a flag")
	sec := s.Secret("A_SECRET", "secret", "a secret")
	if err := s.Parse([]string{"--num", "9", "rest"}, nil); err != nil {
		t.Fatal(err)
	}
	if *name != "from-env" || *num != 9 || *dur != 2*time.Second || !*flag || *sec != "" {
		t.Fatalf("got %q %d %s %v %q", *name, *num, *dur, *flag, *sec)
	}
	if got := s.Args(); len(got) != 1 || got[0] != "rest" {
		t.Fatalf("args %v", got)
	}

	bad := New("x", "", func(k string) string { return map[string]string{"A_NUM": "zero"}[k] })
	bad.Int("A_NUM", "num", 1, 1, "")
	err := bad.Parse(nil, nil)
	if err == nil || !strings.Contains(err.Error(), "A_NUM (--num)") || !strings.Contains(err.Error(), `"zero"`) {
		t.Fatalf("error %v", err)
	}

	secret := New("x", "", func(k string) string { return map[string]string{"S": "hunter2"}[k] })
	secret.Int("S", "s", 1, 1, "")
	if err := secret.Parse(nil, nil); err == nil {
		t.Fatalf("error %v", err)
	}
}

func TestSecretNeverEchoed(t *testing.T) {
	s := New("x", "", func(k string) string { return "" })
	s.Secret("PASS", "pass", "password")
	var out bytes.Buffer
	if err := s.Parse([]string{"--help"}, &out); !errors.Is(err, ErrHelp) {
		t.Fatalf("err %v", err)
	}
	if !strings.Contains(out.String(), "--pass, PASS") || !strings.Contains(out.String(), "never printed") {
		t.Fatalf("usage %s", out.String())
	}
}

func TestHelpListsDefaults(t *testing.T) {
	s := New("x", "Usage: x", func(string) string { return "" })
	s.Duration("TIMEOUT", "timeout", 10*time.Second, "call timeout")
	var out bytes.Buffer
	_ = s.Parse([]string{"-h"}, &out)
	if !strings.Contains(out.String(), "--timeout, TIMEOUT") || !strings.Contains(out.String(), "(default 10s)") {
		t.Fatalf("usage %s", out.String())
	}
}

// TestDurationOffByDefault: a duration whose default is 0 takes 0 and
// positive values; one with a positive default refuses 0; none takes a
// negative one.
func TestDurationOffByDefault(t *testing.T) {
	for _, c := range []struct {
		def  time.Duration
		arg  string
		fail bool
	}{
		{0, "0", false}, {0, "1h", false}, {0, "-1s", true}, {time.Second, "0", true}, {time.Second, "2s", false},
	} {
		s := New("t", "", func(string) string { return "" })
		d := s.Duration("T_D", "d", c.def, "")
		err := s.Parse([]string{"--d", c.arg}, io.Discard)
		if (err != nil) != c.fail {
			t.Errorf("default %s, --d %s: error %v, want failure %v", c.def, c.arg, err, c.fail)
		}
		if err == nil && d.String() != mustDuration(t, c.arg).String() {
			t.Errorf("default %s, --d %s: got %s", c.def, c.arg, d)
		}
	}
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
