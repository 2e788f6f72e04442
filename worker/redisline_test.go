package worker_test

import (
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
