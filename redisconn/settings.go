package redisconn

import (
	"strings"

	"github.com/dyplsq/dyplsq/envflag"
)

// Settings are the Redis settings every dyplsq command takes, each an
// environment variable and a flag: REDIS_URL, REDIS_CLUSTER_ADDRS,
// REDIS_USERNAME, REDIS_PASSWORD and REDIS_TLS.
type Settings struct {
	url, clusterAddrs, username, password *string
	tls                                   *bool
}

// AddSettings declares the Redis settings on s.
func AddSettings(s *envflag.Set) *Settings {
	return &Settings{
		url:          s.String("REDIS_URL", "redis-url", DefaultURL, "Redis URL: redis://, rediss:// or redis-sentinel://"),
		clusterAddrs: s.String("REDIS_CLUSTER_ADDRS", "redis-cluster-addrs", "", "comma-separated Redis Cluster nodes (instead of REDIS_URL)"),
		username:     s.String("REDIS_USERNAME", "redis-username", "", "Redis ACL user name"),
		password:     s.Secret("REDIS_PASSWORD", "redis-password", "Redis password (prefer the variable: flags show in ps)"),
		tls:          s.Bool("REDIS_TLS", "redis-tls", false, "use TLS to Redis Cluster nodes"),
	}
}

// Config returns the configuration the parsed settings describe, checked.
// getenv tells whether REDIS_URL was set: with REDIS_CLUSTER_ADDRS too, that
// is an error.
func (r *Settings) Config(getenv func(string) string) (Config, error) {
	c := Config{URL: *r.url, Username: *r.username, Password: *r.password, TLS: *r.tls}
	if *r.clusterAddrs != "" {
		if getenv("REDIS_URL") != "" {
			return Config{}, errBothSet
		}
		c.URL = ""
		for _, a := range strings.Split(*r.clusterAddrs, ",") {
			if a = strings.TrimSpace(a); a != "" {
				c.ClusterAddrs = append(c.ClusterAddrs, a)
			}
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}
