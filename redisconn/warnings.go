package redisconn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Warnings checks the Redis settings that decide whether queued jobs
// survive, and returns one line per problem found (none when all is well):
//
//   - maxmemory-policy other than noeviction: Redis may evict job, lease and
//     dead-letter keys under memory pressure;
//   - appendonly no and save "": a restart loses everything;
//   - appendonly no (snapshots only): a restart loses what came after the
//     last snapshot;
//   - appendfsync no: a crash of the machine loses what the OS had not
//     written yet (everysec, the promise of RELIABILITY.md, loses about 1 s).
//
// It reads them with CONFIG GET. Where CONFIG is disabled or not allowed, as
// on many managed Redis services, it returns a note saying the settings
// could not be checked instead of an error; an error means Redis could not
// be reached. For a cluster it checks every master and starts each line with
// the master's address.
func Warnings(ctx context.Context, rdb redis.UniversalClient) ([]string, error) {
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return check(ctx, rdb)
	}
	var (
		mu  sync.Mutex
		out []string
	)
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		ws, err := check(ctx, c)
		addr := c.Options().Addr
		if err != nil {
			return fmt.Errorf("%s: %w", addr, err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, w := range ws {
			out = append(out, addr+": "+w)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(out)
	return out, nil
}

// check checks one server.
func check(ctx context.Context, c redis.Cmdable) ([]string, error) {
	vals := make(map[string]string, 4)
	for _, param := range []string{"maxmemory-policy", "appendonly", "save", "appendfsync"} {
		m, err := c.ConfigGet(ctx, param).Result()
		switch {
		case configRefused(err):
			// The server answered, but refused: CONFIG renamed, disabled or
			// not allowed to this user.
			return []string{fmt.Sprintf("could not check the Redis configuration (CONFIG GET %s: %v): "+
				"make sure maxmemory-policy is noeviction and persistence (AOF or RDB snapshots) is on", param, err)}, nil
		case err != nil:
			return nil, fmt.Errorf("check Redis configuration: %w", err)
		}
		v, ok := m[param]
		if !ok {
			return []string{fmt.Sprintf("could not check the Redis configuration (CONFIG GET %s returned nothing): "+
				"make sure maxmemory-policy is noeviction and persistence (AOF or RDB snapshots) is on", param)}, nil
		}
		vals[param] = v
	}
	var ws []string
	if p := vals["maxmemory-policy"]; p != "noeviction" {
		ws = append(ws, fmt.Sprintf("Redis evicts keys (maxmemory-policy=%s): jobs and dead letters can be lost; set noeviction", p))
	}
	switch {
	case vals["appendonly"] == "no" && vals["save"] == "":
		ws = append(ws, `Redis persists nothing (appendonly no, save ""): a Redis restart loses every queued job`)
	case vals["appendonly"] == "no":
		ws = append(ws, "Redis persists only snapshots (appendonly no): a Redis restart loses every job queued since the last one; set appendonly yes")
	case vals["appendfsync"] == "no":
		ws = append(ws, "Redis leaves the AOF to the OS (appendfsync no): a crash of the machine loses up to about 30 s of jobs; set appendfsync everysec")
	}
	return ws, nil
}

// configRefused reports whether Redis answered CONFIG GET with an error
// saying the command is unknown, renamed, disabled or not allowed, as
// opposed to not answering, or refusing every command (bad credentials, still
// loading, no master, too many clients).
func configRefused(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	switch {
	case redis.IsAuthError(err), redis.IsLoadingError(err), redis.IsMasterDownError(err),
		redis.IsClusterDownError(err), redis.IsTryAgainError(err), redis.IsMaxClientsError(err):
		return false
	}
	return true
}
