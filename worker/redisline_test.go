package worker_test

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/internal/redistest"
)

// cutProxy is a TCP proxy in front of Redis that can refuse and cut every
// connection for a while.
type cutProxy struct {
	ln     net.Listener
	target string
	down   atomic.Bool
	mu     sync.Mutex
	conns  map[net.Conn]bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if p.down.Load() {
				c.Close()
				continue
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[u] = true, true
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close(); c.Close() }()
			go func() { _, _ = io.Copy(c, u); u.Close(); c.Close() }()
		}
	}()
	return p
}

// cut closes every open connection.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// A Redis outage gives one warning line and one line when Redis answers
// again; nothing else above debug level comes from asynq or go-redis.
func TestRedisOutageIsOneLine(t *testing.T) {
	t.Parallel()
	opt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	p := newCutProxy(t, opt.Addr)
	opt.Addr = p.ln.Addr().String()
	opt.MaxRetries = 0
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	e := newEnvOn(t, rdb, dyplsim.Config{}, nil)
	t.Cleanup(func() { p.down.Store(false); e.cleanupRedis() })
	e.start()
	time.Sleep(500 * time.Millisecond)
	p.down.Store(true)
	p.cut()
	time.Sleep(4 * time.Second)
	p.down.Store(false)
	eventually(t, 10*time.Second, "the line saying Redis answers again", func() bool {
		return len(logLines(t, e, "Redis answers again")) == 1
	})
	if n := len(logLines(t, e, "Redis unreachable: jobs wait until it answers")); n != 1 {
		t.Errorf("%d Redis unreachable lines, want 1", n)
	}
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if (strings.Contains(line, `"component":"asynq"`) || strings.Contains(line, `"component":"go-redis"`)) &&
			(strings.Contains(line, `"level":"warn"`) || strings.Contains(line, `"level":"error"`)) {
			t.Errorf("noise: %s", line)
		}
	}
}

// An outage while jobs are in flight and the dead-letter sweep runs every
// half second is still one warning: the jobs, the sweep and the other
// loops that meet it log at debug level.
func TestRedisOutageWithJobsIsOneWarning(t *testing.T) {
	t.Parallel()
	opt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	p := newCutProxy(t, opt.Addr)
	opt.Addr = p.ln.Addr().String()
	opt.MaxRetries = 0
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	// The first call to take effect cuts Redis for 3 s, so every call in
	// flight with it ends while Redis is away.
	var once sync.Once
	cut := func(dyplsim.Applied) {
		once.Do(func() {
			p.down.Store(true)
			p.cut()
			time.AfterFunc(3*time.Second, func() { p.down.Store(false) })
		})
	}
	e := newEnvOn(t, rdb, dyplsim.Config{Latency: time.Second, OnApply: cut}, nil)
	t.Cleanup(func() { p.down.Store(false); e.cleanupRedis() })
	var ids []string
	for i := 1; i <= 10; i++ {
		u := seed(i, "updateNoA")
		u.PhoneNoA = fmt.Sprintf("137%08d", i)
		ids = append(ids, e.enqueue(u))
	}
	e.start()
	for _, id := range ids {
		e.waitState(id, 30*time.Second, asynq.TaskStateCompleted)
	}
	eventually(t, 10*time.Second, "the line saying Redis answers again", func() bool {
		return len(logLines(t, e, "Redis answers again")) == 1
	})
	if n := len(logLines(t, e, "Redis unreachable: jobs wait until it answers")); n != 1 {
		t.Fatalf("%d Redis unreachable lines, want 1", n)
	}
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, `"level":"warn"`) && !strings.Contains(line, "Redis unreachable") {
			t.Errorf("more than the one warning: %s", line)
		}
	}
}
