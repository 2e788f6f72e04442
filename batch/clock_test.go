package batch

import (
	"context"
	"testing"
	"time"
)

// TestExpiryByRedisClock: a batch's record lives exactly its TTL by Redis's
// clock, whatever the clock of the CLI that began it. The miniredis clock is
// set ten minutes off this process's, which is a CLI ten minutes fast or
// slow against its Redis.
func TestExpiryByRedisClock(t *testing.T) {
	for _, skew := range []time.Duration{10 * time.Minute, -10 * time.Minute, 2 * time.Hour, -8 * 24 * time.Hour} {
		t.Run(skew.String(), func(t *testing.T) {
			ctx := context.Background()
			m, s := newMiniRedis(t)
			redisNow := time.Now().Add(skew).Truncate(time.Millisecond)
			m.SetTime(redisNow)
			info := begin(t, s, "a")
			if ttl := s.Redis.PTTL(ctx, s.Key(info.ID)).Val(); ttl != s.TTL {
				t.Errorf("CLI %v off: the batch record expires in %v, want %v", -skew, ttl, s.TTL)
			}
			if !info.Created.Equal(redisNow) || info.Expires.Sub(info.Created) != s.TTL {
				t.Errorf("CLI %v off: created %v, expires %v; want created %v (Redis's time) and expiry TTL later",
					-skew, info.Created, info.Expires, redisNow)
			}
			list, err := s.List(ctx, 0)
			if err != nil || len(list) != 1 {
				t.Fatalf("CLI %v off: List = %+v, %v", -skew, list, err)
			}
			// A queueing batch that recorded a row a minute ago by Redis's
			// clock is queueing, not interrupted, whatever this clock says.
			m.SetTime(redisNow.Add(time.Minute))
			if st, _ := s.Status(ctx, info.ID); st.State != StateQueueing {
				t.Errorf("CLI %v off: a batch begun a minute ago is %s", -skew, st.State)
			}
			m.SetTime(redisNow.Add(StaleAfter + time.Minute))
			if st, _ := s.Status(ctx, info.ID); st.State != StateInterrupted {
				t.Errorf("CLI %v off: a batch quiet for %s is %s", -skew, StaleAfter+time.Minute, st.State)
			}
			m.SetTime(redisNow)
			if st, err := s.Complete(ctx, info.ID); err != nil || st != StateQueued {
				t.Fatalf("Complete: %q, %v", st, err)
			}
			if st, _ := s.Status(ctx, info.ID); !st.QueuedAt.Equal(redisNow) {
				t.Errorf("CLI %v off: queued at %v, want %v (Redis's time)", -skew, st.QueuedAt, redisNow)
			}
		})
	}
}
