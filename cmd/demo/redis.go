package main

import (
	"fmt"
	"os/exec"
	"path/filepath"

	"github.com/alicebob/miniredis/v2"
	"github.com/dyplsq/dyplsq/internal/redisserver"
)

// throwawayRedis is the demo's own Redis: never a shared one, since asynq
// has no key prefix and a demo on a shared Redis would hand its jobs to
// real workers.
type throwawayRedis struct {
	URL    string
	Kind   string // "redis-server" or "in-memory"
	stop   func()
	notice string
}

// startRedis starts a local redis-server on a free port when one is
// installed (mode auto or server), or else an in-memory Redis inside this
// process (mode auto or memory).
func startRedis(mode, dir string) (*throwawayRedis, error) {
	if mode != "memory" {
		if bin, err := exec.LookPath("redis-server"); err == nil {
			return startRedisServer(bin, dir)
		} else if mode == "server" {
			return nil, fmt.Errorf("--redis server: redis-server is not installed")
		}
	}
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("in-memory Redis: %w", err)
	}
	return &throwawayRedis{URL: "redis://" + m.Addr() + "/0", Kind: "in-memory", stop: m.Close,
		notice: "No redis-server found: using an in-memory Redis inside this demo (miniredis). Nothing persists."}, nil
}

func startRedisServer(bin, dir string) (*throwawayRedis, error) {
	srv, err := redisserver.Start(bg(), redisserver.Options{Bin: bin, Dir: filepath.Join(dir, "redis")})
	if err != nil {
		return nil, err
	}
	return &throwawayRedis{URL: srv.URL(), Kind: "redis-server", stop: srv.Close,
		notice: "Using a throwaway redis-server on " + srv.Addr + " (removed at the end)."}, nil
}
