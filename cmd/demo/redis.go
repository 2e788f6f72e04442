package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
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
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	rdir := filepath.Join(dir, "redis")
	if err := os.MkdirAll(rdir, 0o700); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", rdir, "--logfile", filepath.Join(rdir, "redis.log"))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(bg()).Err() != nil {
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("redis-server on %s did not start (see %s)", addr, filepath.Join(rdir, "redis.log"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &throwawayRedis{URL: "redis://" + addr + "/0", Kind: "redis-server", stop: stop,
		notice: "Using a throwaway redis-server on " + addr + " (removed at the end)."}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
