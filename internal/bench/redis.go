package bench

import (
	"context"
	"errors"

	"github.com/dyplsq/dyplsq/internal/redisserver"
)

// errNoRedisServer is returned when no redis-server binary can be found.
var errNoRedisServer = errors.New("redis-server is not installed or not in PATH (apt-get install redis-server), or pass -redis-url to use an existing Redis that may be flushed of bench queues")

// startRedisServer starts bin (a path or a name looked up in PATH) as a
// private, throwaway redis-server in its own process group, trying three
// ports before giving up. The caller must Close it.
func startRedisServer(ctx context.Context, bin string) (*redisserver.Server, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		srv, err := redisserver.Start(ctx, redisserver.Options{Bin: bin, DieWithParent: true, OwnGroup: true})
		if errors.Is(err, redisserver.ErrNotInstalled) {
			return nil, errNoRedisServer
		}
		if err == nil {
			return srv, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}
