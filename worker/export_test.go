package worker

import (
	"context"
	"crypto/sha1"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// BrokenFence returns a go-redis hook that breaks the fence the way a bug
// would, without any switch in the production code: "off" answers every
// begin with "go" without running it (no fence at all), "nocommit" answers
// every commit with success without running it (applied versions are never
// recorded). Tests use it to prove their checks can fail.
func BrokenFence(kind string) redis.Hook { return brokenFence{kind: kind} }

type brokenFence struct{ kind string }

func (brokenFence) DialHook(next redis.DialHook) redis.DialHook { return next }

func (b brokenFence) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if b.fake(cmd) {
			return nil
		}
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook fakes the scripts where a pipeline carries them (the
// commit goes with the job's result); the other commands run.
func (b brokenFence) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		rest := cmds[:0:0]
		for _, c := range cmds {
			if !b.fake(c) {
				rest = append(rest, c)
			}
		}
		if len(rest) == 0 {
			return nil
		}
		return next(ctx, rest)
	}
}

// fake answers cmd itself, and says so, if it is a script the broken
// fence fakes.
func (b brokenFence) fake(cmd redis.Cmder) bool {
	c, ok := cmd.(*redis.Cmd)
	if !ok || len(cmd.Args()) < 2 {
		return false
	}
	name := strings.ToLower(cmd.Name())
	if name != "evalsha" && name != "eval" {
		return false
	}
	arg, _ := cmd.Args()[1].(string)
	if name == "eval" {
		arg = fmt.Sprintf("%x", sha1.Sum([]byte(arg)))
	}
	switch {
	case b.kind == "off" && arg == fenceBegin.Hash():
		c.SetVal([]any{int64(fenceGo), int64(0), ""})
		return true
	case b.kind == "nocommit" && arg == fenceCommit.Hash():
		c.SetVal(int64(0))
		return true
	}
	return false
}

// FenceCommitSHA is the SHA1 of the fence's commit script, for hooks that
// make it fail.
var FenceCommitSHA = fenceCommit.Hash()

// FenceBeginSHA is the SHA1 of the fence's begin script.
var FenceBeginSHA = fenceBegin.Hash()

// LoadFenceScripts loads the fence's scripts into rdb's script cache, as
// the first jobs on a fresh Redis would: a test that counts round trips
// then sees none of the one-time NOSCRIPT fallbacks.
func LoadFenceScripts(ctx context.Context, rdb redis.UniversalClient) error {
	for _, s := range []*redis.Script{fenceBegin, fenceCommit, fenceEnd} {
		if err := s.Load(ctx, rdb).Err(); err != nil {
			return err
		}
	}
	return nil
}
