package redisconn

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/redis/go-redis/v9"
)

const (
	evictWarning   = "Redis evicts keys (maxmemory-policy=allkeys-lru): jobs and dead letters can be lost; set noeviction"
	persistWarning = `Redis persists nothing (appendonly no, save ""): a Redis restart loses every queued job`
)

func openPrivate(t *testing.T, args ...string) (redis.UniversalClient, *redistest.Proc) {
	t.Helper()
	srv := redistest.Server(t, args...)
	rdb, err := Open(Config{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb, srv
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestWarningsEvictingAndVolatile(t *testing.T) {
	rdb, _ := openPrivate(t, "--maxmemory-policy", "allkeys-lru")
	ws, err := Warnings(testCtx(t), rdb)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{evictWarning, persistWarning}; !slices.Equal(ws, want) {
		t.Errorf("Warnings = %q, want %q", ws, want)
	}
}

func TestWarningsNoneForDurableNoEviction(t *testing.T) {
	rdb, _ := openPrivate(t, "--appendonly", "yes", "--maxmemory-policy", "noeviction")
	ws, err := Warnings(testCtx(t), rdb)
	if err != nil || len(ws) != 0 {
		t.Errorf("Warnings = %q, %v; want none", ws, err)
	}
}

func TestWarningsSnapshotsOnly(t *testing.T) {
	rdb, _ := openPrivate(t, "--save", "3600 1", "--maxmemory-policy", "volatile-lru")
	ws, err := Warnings(testCtx(t), rdb)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Redis evicts keys (maxmemory-policy=volatile-lru): jobs and dead letters can be lost; set noeviction",
		"Redis persists only snapshots (appendonly no): a Redis restart loses every job queued since the last one; set appendonly yes"}
	if !slices.Equal(ws, want) {
		t.Errorf("Warnings = %q, want %q", ws, want)
	}
}

func TestWarningsAOFLeftToTheOS(t *testing.T) {
	rdb, _ := openPrivate(t, "--appendonly", "yes", "--appendfsync", "no", "--maxmemory-policy", "noeviction")
	ws, err := Warnings(testCtx(t), rdb)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Redis leaves the AOF to the OS (appendfsync no): a crash of the machine loses up to about 30 s of jobs; set appendfsync everysec"}
	if !slices.Equal(ws, want) {
		t.Errorf("Warnings = %q, want %q", ws, want)
	}
}

func TestWarningsWhenConfigIsDisabled(t *testing.T) {
	rdb, _ := openPrivate(t, "--rename-command", "CONFIG", "")
	ws, err := Warnings(testCtx(t), rdb)
	if err != nil {
		t.Fatalf("Warnings: %v, want a note instead of an error", err)
	}
	if len(ws) != 1 || !strings.HasPrefix(ws[0], "could not check the Redis configuration") ||
		!strings.Contains(ws[0], "noeviction") {
		t.Errorf("Warnings = %q, want one note that the settings could not be checked", ws)
	}
}

func TestWarningsFailWhenRedisIsDown(t *testing.T) {
	rdb, srv := openPrivate(t)
	srv.Stop()
	if ws, err := Warnings(testCtx(t), rdb); err == nil {
		t.Errorf("Warnings = %q, nil; want an error", ws)
	}
}

func TestWarningsFailOnWrongPassword(t *testing.T) {
	admin, srv := openPrivate(t)
	if err := admin.ConfigSet(testCtx(t), "requirepass", "right").Err(); err != nil {
		t.Fatal(err)
	}
	rdb, err := Open(Config{URL: srv.URL(), Password: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ws, err := Warnings(testCtx(t), rdb)
	if err == nil {
		t.Fatalf("Warnings = %q, nil; want an authentication error", ws)
	}
	if strings.Contains(err.Error(), "wrong") && !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("error shows the password: %v", err)
	}
}

func TestWarningsClusterChecksEachMaster(t *testing.T) {
	// A one-node cluster holding every slot is enough to go through
	// ForEachMaster.
	srv := redistest.Server(t, "--cluster-enabled", "yes", "--cluster-announce-ip", "127.0.0.1",
		"--maxmemory-policy", "allkeys-lru")
	node := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer node.Close()
	ctx := testCtx(t)
	if err := node.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
	}
	for {
		info, err := node.ClusterInfo(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(info, "cluster_state:ok") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("cluster did not become ready: %s", info)
		}
		time.Sleep(50 * time.Millisecond)
	}

	c, err := ConfigFromEnv(env(map[string]string{"REDIS_CLUSTER_ADDRS": srv.Addr}))
	if err != nil {
		t.Fatal(err)
	}
	rdb, err := Open(c)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("Open = %T, want a cluster client", rdb)
	}
	ws, err := Warnings(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{srv.Addr + ": " + evictWarning, srv.Addr + ": " + persistWarning}
	if !slices.Equal(ws, want) {
		t.Errorf("Warnings = %q, want %q", ws, want)
	}
}
