package monitor

import "github.com/redis/go-redis/v9"

// SharedRedis is an asynq.RedisConnOpt that hands out an existing go-redis
// client, so that the UI uses the process's one connection pool. asynqmon
// v0.7.2 accepts it: it only asserts that MakeRedisClient returns a
// redis.UniversalClient. Its redis_info page works for *redis.Client and
// *redis.ClusterClient, which is what redis.NewUniversalClient returns.
//
// The client stays the caller's: [Server.Shutdown] does not close it.
type SharedRedis struct {
	Client redis.UniversalClient
}

// MakeRedisClient returns the shared client.
func (s SharedRedis) MakeRedisClient() any { return s.Client }
