package api

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"time"

	"github.com/dyplsq/dyplsq/tasks"
)

// Limits of a durable request (POST /v1/updates?durable=N).
const (
	// MaxDurableReplicas is the most replicas ?durable= may ask for: 16.
	MaxDurableReplicas = 16
	// MaxDurableTimeout is the longest ?durable_timeout= may be: 30 s, well
	// within the server's write timeout. The default is
	// tasks.DefaultDurableTimeout (2 s).
	MaxDurableTimeout = 30 * time.Second
)

// Codes of an item's durableError.
const (
	// CodeNotReplicated: fewer replicas than asked confirmed the item within
	// the timeout, or the Redis primary changed since it was queued.
	CodeNotReplicated = "not_replicated"
	// CodeUnavailable: Redis did not answer the wait for the replicas.
	CodeUnavailable = "unavailable"
)

// Problem is what went wrong with one item, beside its code.
type Problem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// durableOf reads ?durable=N and ?durable_timeout=D: nil when the request
// asks for no replica, or a message saying what is wrong.
func durableOf(q url.Values) (*tasks.Durability, string) {
	ns, ts := q["durable"], q["durable_timeout"]
	if len(ns) > 1 || len(ts) > 1 {
		return nil, "durable and durable_timeout may each be given once"
	}
	n := 0
	if len(ns) == 1 {
		var err error
		if n, err = strconv.Atoi(ns[0]); err != nil || n < 0 || n > MaxDurableReplicas {
			return nil, "durable must be a number of Redis replicas from 0 to " + itoa(MaxDurableReplicas)
		}
	}
	if n == 0 {
		if len(ts) == 1 {
			return nil, "durable_timeout needs durable=N (N ≥ 1)"
		}
		return nil, ""
	}
	d := &tasks.Durability{Replicas: n, Timeout: tasks.DefaultDurableTimeout}
	if len(ts) == 1 {
		t, err := time.ParseDuration(ts[0])
		if err != nil || t <= 0 || t > MaxDurableTimeout {
			return nil, "durable_timeout must be a duration such as 500ms or 2s, above 0 and at most " + MaxDurableTimeout.String()
		}
		d.Timeout = t
	}
	return d, ""
}

// confirm waits until d.Replicas replicas hold everything the primary
// primaryID took for queue, and returns nil, or the problem to report with
// each item. It tries once: after a connection error the client may be on
// a new primary, whose replicas would confirm writes the old one lost.
func (s *Server) confirm(ctx context.Context, queue, primaryID string, d tasks.Durability) *Problem {
	ctx, cancel := context.WithTimeout(ctx, d.Timeout+10*time.Second)
	defer cancel()
	err := tasks.WaitReplicas(ctx, s.cfg.Redis, s.cfg.KeyPrefix, queue, primaryID, d)
	var nr *tasks.NotReplicatedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &nr) && nr.Failover:
		return &Problem{CodeNotReplicated, "queued, but the Redis primary changed since (a failover), which may have lost it: " +
			"send the request again with the same Idempotency-Key to queue what is missing and wait again"}
	case errors.As(err, &nr):
		return &Problem{CodeNotReplicated, "queued, but confirmed by " + itoa(nr.Got) + " of " + itoa(nr.Want) +
			" Redis replicas within " + nr.Timeout.String() + ": a failover before they catch up could lose it; " +
			"send the request again with the same Idempotency-Key to wait again"}
	}
	// The cause is Redis; its text may carry addresses, not for clients.
	return &Problem{CodeUnavailable, "queued, but Redis did not answer the wait for its replicas: " +
		"send the request again with the same Idempotency-Key to wait again"}
}
