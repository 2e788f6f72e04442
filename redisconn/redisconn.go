// Package redisconn connects every dyplsq process to Redis the same way: one
// configuration read from the environment, one go-redis client, shared by
// asynq and by dyplsq's own keys.
//
// # Configuration
//
// [ConfigFromEnv] reads:
//
//	REDIS_URL            redis://[user:password@]host[:port][/db]      one server
//	                     rediss://...                                  one server over TLS
//	                     redis-sentinel://[:password@]h1:26379,h2:26379[/db]?master=NAME
//	                     default redis://127.0.0.1:6379/0
//	REDIS_CLUSTER_ADDRS  host:port,host:port,...  Redis Cluster seed nodes (instead of REDIS_URL)
//	REDIS_USERNAME       ACL user name (overrides one in the URL)
//	REDIS_PASSWORD       password (overrides one in the URL)
//	REDIS_TLS            true to use TLS (rediss:// implies it)
//
// Setting both REDIS_URL and REDIS_CLUSTER_ADDRS is an error. redis:// and
// rediss:// URLs are read by go-redis's redis.ParseURL, so its query
// parameters (dial_timeout, pool_size, ...) work. redis-sentinel:// URLs are
// read by asynq.ParseRedisURI: the URL's password authenticates to the
// sentinels and, unless REDIS_PASSWORD is set, to the master as well.
//
// Passwords never appear in [Config.String] or in an error of this package:
// they are replaced by "xxxxx".
//
// # Sharing the client
//
// [Open] returns a redis.UniversalClient: a *redis.Client for one server or
// Sentinel (failover) and a *redis.ClusterClient for a cluster. asynq v0.26
// takes it as is, so a process keeps one connection pool:
//
//	rdb, err := redisconn.Open(cfg)
//	client := asynq.NewClientFromRedisClient(rdb)
//	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{...})
//	insp := asynq.NewInspectorFromRedisClient(rdb)
//
// asynq does not close a client it was given (and its Close methods return
// an error for one): the process closes rdb itself, after asynq has stopped.
//
// # Start-up checks
//
// [Warnings] reports Redis settings that lose jobs: eviction
// (maxmemory-policy other than noeviction) and no persistence at all.
package redisconn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// DefaultURL is the Redis used when neither REDIS_URL nor
// REDIS_CLUSTER_ADDRS is set.
const DefaultURL = "redis://127.0.0.1:6379/0"

// defaultSentinelPort is used for sentinel addresses given without a port.
const defaultSentinelPort = "26379"

// Config says how to reach Redis. Set URL or ClusterAddrs, not both; with
// neither, [DefaultURL] is used.
type Config struct {
	// URL is a redis://, rediss:// or redis-sentinel:// URL.
	URL string
	// ClusterAddrs are the host:port seed nodes of a Redis Cluster.
	ClusterAddrs []string
	// Username and Password authenticate to Redis (to the master, with
	// Sentinel). When set they override those in URL.
	Username, Password string
	// TLS turns TLS on (rediss:// URLs turn it on anyway).
	TLS bool
}

// ConfigFromEnv reads a Config from REDIS_URL, REDIS_CLUSTER_ADDRS,
// REDIS_USERNAME, REDIS_PASSWORD and REDIS_TLS through getenv (os.Getenv in
// a program, a map lookup in a test) and validates it. The error names the
// variable at fault.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		URL:      strings.TrimSpace(getenv("REDIS_URL")),
		Username: getenv("REDIS_USERNAME"),
		Password: getenv("REDIS_PASSWORD"),
	}
	for _, a := range strings.Split(getenv("REDIS_CLUSTER_ADDRS"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.ClusterAddrs = append(c.ClusterAddrs, a)
		}
	}
	if c.URL != "" && len(c.ClusterAddrs) > 0 {
		return Config{}, errBothSet
	}
	if c.URL == "" && len(c.ClusterAddrs) == 0 {
		c.URL = DefaultURL
	}
	if v := strings.TrimSpace(getenv("REDIS_TLS")); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("REDIS_TLS is %q: want true or false", v)
		}
		c.TLS = b
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

var errBothSet = errors.New("REDIS_URL and REDIS_CLUSTER_ADDRS are both set: set REDIS_URL for one server or Sentinel, or REDIS_CLUSTER_ADDRS for Redis Cluster, not both")

// Validate reports the first problem of c, naming the environment variable
// it comes from, or nil. It checks what can be checked without connecting.
func (c Config) Validate() error {
	_, err := c.options()
	return err
}

// String describes c for logs, with every password replaced by "xxxxx".
func (c Config) String() string {
	var b strings.Builder
	if c.URL != "" || len(c.ClusterAddrs) == 0 {
		u, _ := redactURL(c.url())
		b.WriteString(u)
	}
	if len(c.ClusterAddrs) > 0 {
		if b.Len() > 0 {
			b.WriteString(" ")
		}
		b.WriteString("redis-cluster " + strings.Join(c.ClusterAddrs, ","))
	}
	if c.Username != "" {
		b.WriteString(" username=" + c.Username)
	}
	if c.Password != "" {
		b.WriteString(" password=xxxxx")
	}
	if c.TLS {
		b.WriteString(" tls")
	}
	return b.String()
}

// Open returns a client for c without connecting: the first command
// connects. The caller closes it.
func Open(c Config) (redis.UniversalClient, error) {
	o, err := c.options()
	if err != nil {
		return nil, err
	}
	switch {
	case o.cluster != nil:
		return redis.NewClusterClient(o.cluster), nil
	case o.failover != nil:
		return redis.NewFailoverClient(o.failover), nil
	default:
		return redis.NewClient(o.single), nil
	}
}

// options holds the go-redis options of exactly one kind of client.
type options struct {
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

func (c Config) url() string {
	if c.URL == "" {
		return DefaultURL
	}
	return c.URL
}

func (c Config) tlsConfig(serverName string) *tls.Config {
	if !c.TLS {
		return nil
	}
	// An empty ServerName makes crypto/tls verify each node's own host name.
	return &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
}

func (c Config) options() (options, error) {
	if c.URL != "" && len(c.ClusterAddrs) > 0 {
		return options{}, errBothSet
	}
	if len(c.ClusterAddrs) > 0 {
		for _, a := range c.ClusterAddrs {
			if err := checkAddr(a); err != nil {
				return options{}, fmt.Errorf("REDIS_CLUSTER_ADDRS: %q %v", a, err)
			}
		}
		return options{cluster: &redis.ClusterOptions{
			Addrs:     append([]string(nil), c.ClusterAddrs...),
			Username:  c.Username,
			Password:  c.Password,
			TLSConfig: c.tlsConfig(""),
		}}, nil
	}

	raw := c.url()
	shown, secret := redactURL(raw)
	fail := func(format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		return fmt.Errorf("REDIS_URL %s: %s", shown, scrub(msg, secret, c.Password))
	}
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok {
		return options{}, fail("not a URL: want redis://host:port/db, rediss://... or redis-sentinel://host:port,...?master=NAME")
	}
	if _, err := url.Parse(raw); err != nil && secret != "" {
		// The parser's message may quote any part of the URL, the password
		// included, so it is not shown.
		return options{}, fail("cannot be parsed as a URL: check the host and port, and percent-encode / ? # @ : %% in the user name and password")
	}
	switch strings.ToLower(scheme) {
	case "redis", "rediss":
		o, err := redis.ParseURL(raw)
		if err != nil {
			return options{}, fail("%v", plainError(err))
		}
		if c.Username != "" {
			o.Username = c.Username
		}
		if c.Password != "" {
			o.Password = c.Password
		}
		if o.TLSConfig == nil {
			host, _, _ := net.SplitHostPort(o.Addr)
			o.TLSConfig = c.tlsConfig(host)
		}
		return options{single: o}, nil
	case "redis-sentinel":
		return c.sentinelOptions(raw, fail)
	default:
		return options{}, fail("unsupported scheme %q: use redis://, rediss:// or redis-sentinel://", scheme)
	}
}

func (c Config) sentinelOptions(raw string, fail func(string, ...any) error) (options, error) {
	opt, err := asynq.ParseRedisURI(raw)
	if err != nil {
		return options{}, fail("%v (give every sentinel a port, or none for %s)", plainError(err), defaultSentinelPort)
	}
	fo, ok := opt.(asynq.RedisFailoverClientOpt)
	if !ok {
		return options{}, fail("not a sentinel URL")
	}
	if fo.MasterName == "" {
		return options{}, fail("no master name: add ?master=NAME (the name the sentinels monitor)")
	}
	u, err := url.Parse(raw) // asynq parsed it already, so this succeeds
	if err != nil {
		return options{}, fail("%v", plainError(err))
	}
	for k := range u.Query() {
		if k != "master" {
			return options{}, fail("unknown parameter %q: a sentinel URL takes only ?master=NAME, and the database number as its path", k)
		}
	}
	db := 0
	if p := strings.Trim(u.Path, "/"); p != "" {
		if db, err = strconv.Atoi(p); err != nil || db < 0 {
			return options{}, fail("the path must be a database number, got %q", p)
		}
	}
	var addrs []string
	for _, a := range fo.SentinelAddrs {
		if a == "" {
			return options{}, fail("empty sentinel address")
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			a = net.JoinHostPort(a, defaultSentinelPort)
		}
		if err := checkAddr(a); err != nil {
			return options{}, fail("sentinel address %q %v", a, err)
		}
		addrs = append(addrs, a)
	}
	password := fo.SentinelPassword
	if c.Password != "" {
		password = c.Password
	}
	return options{failover: &redis.FailoverOptions{
		MasterName:       fo.MasterName,
		SentinelAddrs:    addrs,
		SentinelUsername: u.User.Username(),
		SentinelPassword: fo.SentinelPassword,
		Username:         c.Username,
		Password:         password,
		DB:               db,
		TLSConfig:        c.tlsConfig(""),
	}}, nil
}

// checkAddr checks that a is host:port with a valid port number.
func checkAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return errors.New("is not host:port")
	}
	if host == "" {
		return errors.New("has no host")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return errors.New("has no valid port")
	}
	return nil
}

// plainError drops the URL a *url.Error repeats in its message, keeping the
// reason.
func plainError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// secretParam matches query parameter names whose values are not shown.
var secretParam = regexp.MustCompile(`(?i)pas|pwd|secret|token|auth|key`)

// redactURL returns raw with its password, and the values of query
// parameters named like one, replaced by "xxxxx", and the password. It works
// on URLs net/url cannot parse too.
func redactURL(raw string) (shown, secret string) {
	shown, secret = redactUserinfo(raw)
	base, query, ok := strings.Cut(shown, "?")
	if !ok {
		return shown, secret
	}
	params := strings.Split(query, "&")
	for i, p := range params {
		if k, _, ok := strings.Cut(p, "="); ok && secretParam.MatchString(k) {
			params[i] = k + "=xxxxx"
		}
	}
	return base + "?" + strings.Join(params, "&"), secret
}

func redactUserinfo(raw string) (shown, secret string) {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			secret = p
		}
	}
	i := strings.Index(raw, "://")
	if i < 0 {
		return raw, secret
	}
	rest := raw[i+3:]
	end := len(rest)
	if j := strings.IndexAny(rest, "?#"); j >= 0 {
		end = j // the user information comes before any query
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return raw, secret
	}
	userinfo := rest[:at]
	user, pass, ok := strings.Cut(userinfo, ":")
	if !ok {
		return raw, secret
	}
	if secret == "" {
		secret = pass
	}
	return raw[:i+3] + user + ":xxxxx" + rest[at:], secret
}

// scrub replaces every secret, raw or URL-escaped, in msg by "xxxxx".
func scrub(msg string, secrets ...string) string {
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for _, v := range []string{s, url.QueryEscape(s), url.PathEscape(s), url.UserPassword("", s).String()[1:]} {
			if v != "" {
				msg = strings.ReplaceAll(msg, v, "xxxxx")
			}
		}
	}
	return msg
}
