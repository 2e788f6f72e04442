// Package redistest gives tests a real Redis server.
//
// URL returns the Redis named by REDIS_URL (make test and .ci/run start a
// throwaway redis-server and set it). Tests sharing that server must keep to
// their own keys: Namespace returns a fresh name to build queue names and key
// prefixes from. Server starts a private redis-server for tests that stop,
// restart or reconfigure Redis. Both fail the test loudly when no Redis is
// available: they never skip.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/internal/redisserver"
	"github.com/redis/go-redis/v9"
)

// URL returns REDIS_URL after checking that the server answers PING.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("REDIS_URL")
	if u == "" {
		t.Fatal("REDIS_URL is not set: run the tests with `make test`, which starts a throwaway redis-server, or set REDIS_URL=redis://127.0.0.1:6379/0")
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("REDIS_URL %q: %v", u, err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis at REDIS_URL %q does not answer: %v", u, err)
	}
	return u
}

// Client returns a go-redis client for URL, closed when the test ends.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(URL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// Namespace returns a short random name unique to this call, to prefix the
// queues and keys of one test.
func Namespace(t testing.TB) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "t" + hex.EncodeToString(b[:])
}

// Proc is a private redis-server started for one test.
type Proc struct {
	Addr string
	Dir  string
	srv  *redisserver.Server
	t    testing.TB
}

// URL is the redis:// URL of the private server.
func (p *Proc) URL() string { return p.srv.URL() }

// Server starts a private redis-server on a free loopback port with the extra
// arguments given (e.g. "--maxmemory-policy", "allkeys-lru"). It is stopped
// when the test ends.
func Server(t testing.TB, extra ...string) *Proc {
	t.Helper()
	srv, err := redisserver.New(redisserver.Options{Dir: t.TempDir(), Args: extra, DieWithParent: true})
	if errors.Is(err, redisserver.ErrNotInstalled) {
		t.Fatal("redis-server is not installed (apt-get install redis-server): this test needs a private Redis")
	}
	if err != nil {
		t.Fatal(err)
	}
	p := &Proc{Addr: srv.Addr, Dir: srv.Dir, srv: srv, t: t}
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// Start (re)starts the server process on its port and waits for PING.
func (p *Proc) Start() {
	p.t.Helper()
	if err := p.srv.Start(context.Background()); err != nil {
		p.t.Fatal(err)
	}
}

// Stop kills the server process (SIGKILL: an outage, not a shutdown).
func (p *Proc) Stop() { p.srv.Stop() }

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := redisserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// String describes the server for failure messages.
func (p *Proc) String() string { return p.srv.String() }

// Cluster starts a Redis Cluster of n masters (no replicas) on free
// loopback ports, as `redis-cli --cluster create` makes it, and returns
// the node addresses. Every node stops when the test ends.
func Cluster(t testing.TB, n int) []string {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatal("redis-cli is not installed (apt-get install redis-tools): this test needs it to create a cluster")
	}
	var addrs []string
	for i := 0; i < n; i++ {
		p := Server(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
		addrs = append(addrs, p.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := c.ClusterInfo(ctx).Result()
		cancel()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			// Every node must agree before clients see a stable map.
			ok := true
			for _, a := range addrs {
				nc := redis.NewClient(&redis.Options{Addr: a})
				ni, err := nc.ClusterInfo(context.Background()).Result()
				nc.Close()
				if err != nil || !strings.Contains(ni, "cluster_state:ok") {
					ok = false
				}
			}
			if ok {
				return addrs
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster on %v not ready: %v %s", addrs, err, info)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
