// Package redisserver starts throwaway redis-server processes: on a free
// loopback port, without persistence, with their files in a directory of
// their own. The tests (through internal/redistest), the benchmarks and the
// demo all start their private Redis with it; .ci/with-redis starts the one
// `make test` shares in its own shell way.
package redisserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotInstalled is returned when the redis-server binary cannot be found.
var ErrNotInstalled = errors.New("redis-server is not installed or not in PATH (apt-get install redis-server)")

// startTimeout is how long Start waits for the server to answer PING.
const startTimeout = 10 * time.Second

// Options says how to run a server. The zero value runs "redis-server"
// from PATH in a new temporary directory.
type Options struct {
	// Bin is the redis-server binary, a path or a name looked up in PATH;
	// default "redis-server".
	Bin string
	// Dir holds the server's files (redis.log, and whatever the extra
	// arguments make it write); it is created if missing and kept. Empty:
	// a new temporary directory that Close removes.
	Dir string
	// Args are extra arguments, e.g. "--maxmemory-policy", "allkeys-lru".
	Args []string
	// DieWithParent has the kernel kill the server when the process that
	// started it dies without stopping it (Linux only).
	DieWithParent bool
	// OwnGroup puts the server in its own process group, so that a
	// terminal's Ctrl-C reaches only the program that started it (Unix
	// only).
	OwnGroup bool
}

// Server is one redis-server on a loopback port. Its port and directory stay
// the same across Stop and Start, so a test can take Redis down and bring it
// back.
type Server struct {
	Addr string // host:port
	Dir  string // the server's directory

	bin     string
	args    []string
	opts    Options
	tempDir bool
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current process has exited
}

// New prepares a server on a free port without starting it.
func New(o Options) (*Server, error) {
	bin, err := exec.LookPath(cmp.Or(o.Bin, "redis-server"))
	if err != nil {
		return nil, ErrNotInstalled
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: o.Dir, bin: bin, opts: o}
	if s.Dir == "" {
		if s.Dir, err = os.MkdirTemp("", "dyplsq-redis-"); err != nil {
			return nil, err
		}
		s.tempDir = true
	} else if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, err
	}
	s.args = append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.Dir, "--logfile", s.LogFile(), "--daemonize", "no"}, o.Args...)
	return s, nil
}

// Start prepares a server with [New] and starts it. The caller must Close it.
func Start(ctx context.Context, o Options) (*Server, error) {
	s, err := New(o)
	if err != nil {
		return nil, err
	}
	if err := s.Start(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// URL is the redis:// URL of the server's database 0.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// LogFile is the path of the server's log.
func (s *Server) LogFile() string { return filepath.Join(s.Dir, "redis.log") }

// String describes the server for messages.
func (s *Server) String() string { return "redis-server " + s.Addr }

// Start starts the server process and waits until it answers PING. An
// error carries the server's log.
func (s *Server) Start(ctx context.Context) error {
	cmd := exec.Command(s.bin, s.args...)
	cmd.SysProcAttr = procAttr(s.opts)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done

	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(startTimeout)
	for {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := c.Ping(pctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server on %s exited at start:\n%s", s.Addr, s.log())
		default:
		}
		if ctx.Err() != nil {
			s.Stop()
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("redis-server on %s did not answer PING within %s: %v\n%s", s.Addr, startTimeout, err, s.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) log() []byte {
	b, _ := os.ReadFile(s.LogFile())
	return b
}

// Stop kills the server process (SIGKILL: an outage, not a shutdown) and
// waits for it to exit. It is safe to call more than once.
func (s *Server) Stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Close stops the server and removes its directory if New made it.
func (s *Server) Close() {
	if s == nil {
		return
	}
	s.Stop()
	if s.tempDir {
		_ = os.RemoveAll(s.Dir)
	}
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
