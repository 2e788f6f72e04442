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
		c, ok := cmd.(*redis.Cmd)
		if !ok || len(cmd.Args()) < 2 {
			return next(ctx, cmd)
		}
		name := strings.ToLower(cmd.Name())
		if name != "evalsha" && name != "eval" {
			return next(ctx, cmd)
		}
		arg, _ := cmd.Args()[1].(string)
		if name == "eval" {
			arg = fmt.Sprintf("%x", sha1.Sum([]byte(arg)))
		}
		switch {
		case b.kind == "off" && arg == fenceBegin.Hash():
			c.SetVal([]any{int64(fenceGo), int64(0), ""})
			return nil
		case b.kind == "nocommit" && arg == fenceCommit.Hash():
			c.SetVal(int64(0))
			return nil
		}
		return next(ctx, cmd)
	}
}

func (brokenFence) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// FenceCommitSHA is the SHA1 of the fence's commit script, for hooks that
// make it fail.
var FenceCommitSHA = fenceCommit.Hash()

// FenceBeginSHA is the SHA1 of the fence's begin script.
var FenceBeginSHA = fenceBegin.Hash()
