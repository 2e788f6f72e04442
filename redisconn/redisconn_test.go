package redisconn

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/envflag"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Config
	}{
		{"Default", nil, Config{URL: DefaultURL}},
		{"URL", map[string]string{"REDIS_URL": " redis://h:6380/2 "}, Config{URL: "redis://h:6380/2"}},
		{"Sentinel", map[string]string{"REDIS_URL": "redis-sentinel://h1:26379,h2:26379?master=m"},
			Config{URL: "redis-sentinel://h1:26379,h2:26379?master=m"}},
		{"Cluster", map[string]string{"REDIS_CLUSTER_ADDRS": " a:7000, b:7001 ,,", "REDIS_USERNAME": "u",
			"REDIS_PASSWORD": "p", "REDIS_TLS": "true"},
			Config{ClusterAddrs: []string{"a:7000", "b:7001"}, Username: "u", Password: "p", TLS: true}},
		{"TLSOne", map[string]string{"REDIS_TLS": "1"}, Config{URL: DefaultURL, TLS: true}},
		{"TLSFalse", map[string]string{"REDIS_TLS": "false"}, Config{URL: DefaultURL}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ConfigFromEnv(env(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if got.URL != tc.want.URL || !slices.Equal(got.ClusterAddrs, tc.want.ClusterAddrs) ||
				got.Username != tc.want.Username || got.Password != tc.want.Password || got.TLS != tc.want.TLS {
				t.Errorf("ConfigFromEnv = %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestConfigFromEnvErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string // substrings of the error
	}{
		{"BothSet", map[string]string{"REDIS_URL": "redis://:s3cr3t@h:6379/0", "REDIS_CLUSTER_ADDRS": "a:7000"},
			[]string{"REDIS_URL and REDIS_CLUSTER_ADDRS are both set"}},
		{"BadTLS", map[string]string{"REDIS_TLS": "yes please"}, []string{"REDIS_TLS", `"yes please"`}},
		{"BadScheme", map[string]string{"REDIS_URL": "http://:s3cr3t@h:6379"}, []string{"REDIS_URL", "unsupported scheme", "redis-sentinel://"}},
		{"NoScheme", map[string]string{"REDIS_URL": "127.0.0.1:6379"}, []string{"REDIS_URL", "not a URL"}},
		{"BadPort", map[string]string{"REDIS_URL": "redis://h:port/0"}, []string{"REDIS_URL", "redis://h:port/0", "invalid port"}},
		{"BadPortWithPassword", map[string]string{"REDIS_URL": "redis://:s3cr3t@h:port/0"}, []string{"REDIS_URL", "redis://:xxxxx@h:port/0", "percent-encode"}},
		{"BadDB", map[string]string{"REDIS_URL": "redis://:s3cr3t@h:6379/zero"}, []string{"REDIS_URL", "database"}},
		{"UnknownParam", map[string]string{"REDIS_URL": "redis://h:6379/0?pasword=s3cr3t"}, []string{"REDIS_URL", "pasword"}},
		{"SentinelNoMaster", map[string]string{"REDIS_URL": "redis-sentinel://:s3cr3t@h1:26379,h2:26379"}, []string{"REDIS_URL", "?master=NAME"}},
		{"SentinelMixedPorts", map[string]string{"REDIS_URL": "redis-sentinel://h1:26379,h2?master=m"}, []string{"REDIS_URL", "give every sentinel a port"}},
		{"SentinelUnknownParam", map[string]string{"REDIS_URL": "redis-sentinel://h1:26379?master=m&db=2"}, []string{"REDIS_URL", `unknown parameter "db"`}},
		{"SentinelBadDB", map[string]string{"REDIS_URL": "redis-sentinel://h1:26379/x?master=m"}, []string{"REDIS_URL", "database number"}},
		{"ClusterAddrWithoutPort", map[string]string{"REDIS_CLUSTER_ADDRS": "a:7000,b"}, []string{"REDIS_CLUSTER_ADDRS", `"b" is not host:port`}},
		{"ClusterAddrBadPort", map[string]string{"REDIS_CLUSTER_ADDRS": "a:70000"}, []string{"REDIS_CLUSTER_ADDRS", "port"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ConfigFromEnv(env(tc.env))
			if err == nil {
				t.Fatal("ConfigFromEnv did not fail")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error shows the password: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestPasswordNeverShown(t *testing.T) {
	const secret = "s3cr3t-pw"
	configs := []Config{
		{URL: "redis://:" + secret + "@h:6379/0"},
		{URL: "redis://user:" + secret + "@h:6379/0"},
		{URL: "rediss://:" + secret + "@h:6379/0?dial_timeout=3s"},
		{URL: "redis://:" + secret + "@h:bad/0"},
		{URL: "redis://:" + secret + "/x@h:6379/0"},     // an unescaped "/" breaks URL parsing
		{URL: "redis://:" + secret + "@h:6379/0/1"},     // bad path
		{URL: "redis://:s3cr3t%2Dpw@h:6379/zero"},       // escaped in the URL
		{URL: "http://:" + secret + "@h:6379/0"},        // bad scheme
		{URL: "redis-sentinel://:" + secret + "@h1,h2"}, // no master
		{URL: "redis-sentinel://:" + secret + "@h1:x?master=m"},
		{URL: "redis://h:6379/0?x=1", Password: secret},
		{URL: "redis://h:bad/0", Password: secret},
		{URL: "redis://:" + secret + "@h:6379/0", ClusterAddrs: []string{"a:1"}},
		{ClusterAddrs: []string{"a:1", "b"}, Password: secret},
		{ClusterAddrs: []string{"a:1"}, Username: "u", Password: secret, TLS: true},
	}
	for _, c := range configs {
		s := c.String()
		if strings.Contains(s, "s3cr3t") {
			t.Errorf("String() = %q shows the password", s)
		}
		if !strings.Contains(s, "xxxxx") {
			t.Errorf("String() = %q does not show that a password is set", s)
		}
		if err := c.Validate(); err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("Validate() = %q shows the password", err)
		}
		if _, err := Open(c); err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("Open() = %q shows the password", err)
		}
	}
}

func TestString(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{}, DefaultURL},
		{Config{URL: "redis://u:pw@h:6379/1"}, "redis://u:xxxxx@h:6379/1"},
		{Config{URL: "redis-sentinel://:pw@h1:26379,h2:26379?master=m"}, "redis-sentinel://:xxxxx@h1:26379,h2:26379?master=m"},
		{Config{URL: "redis://h:6379/0", Username: "u", Password: "pw", TLS: true}, "redis://h:6379/0 username=u password=xxxxx tls"},
		{Config{ClusterAddrs: []string{"a:1", "b:2"}}, "redis-cluster a:1,b:2"},
		{Config{URL: "redis://h:1/0?dial_timeout=3s&password=pw"}, "redis://h:1/0?dial_timeout=3s&password=xxxxx"},
		{Config{URL: "redis://h:1/0", ClusterAddrs: []string{"a:1"}}, "redis://h:1/0 redis-cluster a:1"},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestOptions(t *testing.T) {
	t.Run("Redis", func(t *testing.T) {
		o, err := Config{URL: "redis://u:pw@h:6380/3?pool_size=7"}.options()
		if err != nil {
			t.Fatal(err)
		}
		s := o.single
		if s == nil || s.Addr != "h:6380" || s.DB != 3 || s.Username != "u" || s.Password != "pw" || s.PoolSize != 7 || s.TLSConfig != nil {
			t.Fatalf("options %+v", s)
		}
	})
	t.Run("RedisDefaults", func(t *testing.T) {
		o, err := Config{URL: "redis://h"}.options()
		if err != nil {
			t.Fatal(err)
		}
		if o.single.Addr != "h:6379" || o.single.DB != 0 {
			t.Fatalf("options %+v", o.single)
		}
	})
	t.Run("Rediss", func(t *testing.T) {
		o, err := Config{URL: "rediss://h:6380/0"}.options()
		if err != nil {
			t.Fatal(err)
		}
		if o.single.TLSConfig == nil || o.single.TLSConfig.ServerName != "h" {
			t.Fatalf("TLS config %+v", o.single.TLSConfig)
		}
	})
	t.Run("RedisWithTLSFlag", func(t *testing.T) {
		o, err := Config{URL: "redis://h:6380/0", TLS: true}.options()
		if err != nil {
			t.Fatal(err)
		}
		if o.single.TLSConfig == nil || o.single.TLSConfig.ServerName != "h" {
			t.Fatalf("TLS config %+v", o.single.TLSConfig)
		}
	})
	t.Run("CredentialsOverrideURL", func(t *testing.T) {
		o, err := Config{URL: "redis://u:pw@h/0", Username: "u2", Password: "pw2"}.options()
		if err != nil {
			t.Fatal(err)
		}
		if o.single.Username != "u2" || o.single.Password != "pw2" {
			t.Fatalf("options %+v", o.single)
		}
	})
	t.Run("Sentinel", func(t *testing.T) {
		o, err := Config{URL: "redis-sentinel://:pw@h1:26379,h2:26380/2?master=mymaster"}.options()
		if err != nil {
			t.Fatal(err)
		}
		f := o.failover
		if f == nil || f.MasterName != "mymaster" || !slices.Equal(f.SentinelAddrs, []string{"h1:26379", "h2:26380"}) ||
			f.DB != 2 || f.SentinelPassword != "pw" || f.Password != "pw" || f.TLSConfig != nil {
			t.Fatalf("failover options %+v", f)
		}
	})
	t.Run("SentinelDefaultPort", func(t *testing.T) {
		o, err := Config{URL: "redis-sentinel://h1,h2?master=m"}.options()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(o.failover.SentinelAddrs, []string{"h1:26379", "h2:26379"}) {
			t.Fatalf("sentinel addresses %q", o.failover.SentinelAddrs)
		}
	})
	t.Run("SentinelMasterPassword", func(t *testing.T) {
		o, err := Config{URL: "redis-sentinel://:spw@h1:26379?master=m", Username: "u", Password: "mpw", TLS: true}.options()
		if err != nil {
			t.Fatal(err)
		}
		f := o.failover
		if f.SentinelPassword != "spw" || f.Password != "mpw" || f.Username != "u" || f.DB != 0 || f.TLSConfig == nil {
			t.Fatalf("failover options %+v", f)
		}
	})
	t.Run("Cluster", func(t *testing.T) {
		o, err := Config{ClusterAddrs: []string{"a:7000", "b:7001"}, Username: "u", Password: "pw", TLS: true}.options()
		if err != nil {
			t.Fatal(err)
		}
		c := o.cluster
		if c == nil || !slices.Equal(c.Addrs, []string{"a:7000", "b:7001"}) || c.Username != "u" || c.Password != "pw" || c.TLSConfig == nil {
			t.Fatalf("cluster options %+v", c)
		}
	})
}

func TestOpenClientKinds(t *testing.T) {
	for _, tc := range []struct {
		c       Config
		cluster bool
	}{
		{Config{URL: "redis://127.0.0.1:1/0"}, false},
		{Config{URL: "redis-sentinel://127.0.0.1:1?master=m"}, false},
		{Config{ClusterAddrs: []string{"127.0.0.1:1"}}, true},
	} {
		rdb, err := Open(tc.c)
		if err != nil {
			t.Fatalf("Open(%v): %v", tc.c, err)
		}
		_, isCluster := rdb.(*redis.ClusterClient)
		if isCluster != tc.cluster {
			t.Errorf("Open(%v) = %T", tc.c, rdb)
		}
		rdb.Close()
	}
}

func TestOpenAndPing(t *testing.T) {
	c, err := ConfigFromEnv(env(map[string]string{"REDIS_URL": redistest.URL(t)}))
	if err != nil {
		t.Fatal(err)
	}
	rdb, err := Open(c)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING %s: %v", c, err)
	}
}

func TestSettings(t *testing.T) {
	parse := func(env map[string]string, args ...string) (Config, error) {
		getenv := func(k string) string { return env[k] }
		s := envflag.New("x", "", getenv)
		r := AddSettings(s)
		if err := s.Parse(args, nil); err != nil {
			t.Fatal(err)
		}
		return r.Config(getenv)
	}
	c, err := parse(nil)
	if err != nil || c.URL != DefaultURL || len(c.ClusterAddrs) != 0 {
		t.Fatalf("default: %#v %v", c, err)
	}
	c, err = parse(nil, "--redis-cluster-addrs", "a:1, b:2,", "--redis-tls", "true")
	if err != nil || c.URL != "" || len(c.ClusterAddrs) != 2 || c.ClusterAddrs[1] != "b:2" || !c.TLS {
		t.Fatalf("cluster: %#v %v", c, err)
	}
	if _, err := parse(map[string]string{"REDIS_URL": "redis://h:1/0", "REDIS_CLUSTER_ADDRS": "a:1"}); err != errBothSet {
		t.Fatalf("both set: %v", err)
	}
}
