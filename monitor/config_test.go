package monitor

import (
	"testing"

	"github.com/hibiken/asynq"
)

func TestNewRefusesOpenAddressWithoutCredentials(t *testing.T) {
	opt := asynq.RedisClientOpt{Addr: "127.0.0.1:1"} // never dialled by New
	for _, addr := range []string{"0.0.0.0:0", ":8080", "192.0.2.1:8080", "example.com:80"} {
		_, err := New(Config{Addr: addr, RedisConnOpt: opt})
		want := "MONITOR_ADDR " + addr + " is not loopback: set MONITOR_USER and MONITOR_PASSWORD"
		if err == nil || err.Error() != want {
			t.Errorf("New(%q) without credentials: err = %v, want %q", addr, err, want)
		}
	}
	for _, addr := range []string{"", "127.0.0.1:0", "localhost:8080", "[::1]:8080", "127.0.0.2:9"} {
		s, err := New(Config{Addr: addr, RedisConnOpt: opt})
		if err != nil {
			t.Errorf("New(%q) without credentials: %v", addr, err)
			continue
		}
		s.close()
	}
	s, err := New(Config{Addr: "0.0.0.0:0", User: "ops", Password: "secret", RedisConnOpt: opt})
	if err != nil {
		t.Fatalf("New(0.0.0.0:0) with credentials: %v", err)
	}
	s.close()
}

func TestNewRejectsIncompleteConfig(t *testing.T) {
	opt := asynq.RedisClientOpt{Addr: "127.0.0.1:1"}
	for name, cfg := range map[string]Config{
		"user only":      {User: "ops", RedisConnOpt: opt},
		"password only":  {Password: "secret", RedisConnOpt: opt},
		"no redis":       {},
		"nil shared":     {RedisConnOpt: SharedRedis{}},
		"bad addr":       {Addr: "8080", RedisConnOpt: opt},
		"unknown option": {RedisConnOpt: badOpt{}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}

type badOpt struct{}

func (badOpt) MakeRedisClient() any { return "not a client" }
