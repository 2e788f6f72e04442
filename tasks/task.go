package tasks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/hibiken/asynq"
)

// Defaults of the task options [NewTask] sets. Options passed by the caller
// override them.
const (
	// DefaultMaxRetry is only a backstop: the worker's handler enforces its
	// own attempt limit and maximum age, and dead-letters the job itself.
	DefaultMaxRetry = 1000

	// DefaultRetention keeps a finished task, and its result (the API's
	// RequestId, or why it was superseded), visible in the web UI for a day.
	// It is also how long an IdempotencyKey keeps its task id taken.
	DefaultRetention = 24 * time.Hour

	// DefaultTimeout bounds one run of the task. It must exceed the API
	// call timeout, which the worker keeps below it.
	DefaultTimeout = 5 * time.Minute
)

// ErrMalformed marks a payload that no worker can process: bad JSON, a
// missing required field, or an unsupported schema. [Decode] wraps it.
var ErrMalformed = errors.New("malformed payload")

// ErrUnsupportedSchema marks a payload written with a newer schema than
// [SchemaVersion]. [Decode] wraps it together with [ErrMalformed]; a worker
// may prefer to retry such a job during a rolling upgrade, so that an
// upgraded worker picks it up, instead of dead-lettering it.
var ErrUnsupportedSchema = errors.New("unsupported payload schema")

// TaskIDForKey returns the asynq task id derived from an idempotency key:
// "idem_" and 26 symbols (130 bits) of the key's SHA-256, spelled without
// 0, 1, l and o. Any key string is safe, and equal keys give equal ids. The
// id has no "-", which the web UI (asynqmon) cuts a task id at, and no run
// of digits that masking could take for a phone number.
func TaskIDForKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	const alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
	out := make([]byte, 0, 5+26)
	out = append(out, "idem_"...)
	var acc uint64
	var bits uint
	for _, c := range sum {
		acc = acc<<8 | uint64(c)
		bits += 8
		for bits >= 5 && len(out) < cap(out) {
			bits -= 5
			out = append(out, alphabet[(acc>>bits)&31])
		}
	}
	return string(out)
}

// LegacyTaskIDForKey returns the task id an idempotency key had before
// [TaskIDForKey] took its present form: "idem-" and the first 32 hex digits
// of the key's SHA-256. [Producer.Enqueue] and the enqueue CLI treat a task
// with this id as the key's own, so that a key queued before the change is
// still queued once.
func LegacyTaskIDForKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "idem-" + hex.EncodeToString(sum[:])[:32]
}

// LegacyKeyTask returns the id of a task of queue that holds key in its
// [LegacyTaskIDForKey] form, and whether there is one.
func LegacyKeyTask(insp *asynq.Inspector, queue, key string) (string, bool, error) {
	id := LegacyTaskIDForKey(key)
	_, err := insp.GetTaskInfo(queue, id)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		return "", false, nil
	case err != nil:
		return "", false, err
	}
	return id, true, nil
}

// NewTask normalizes and validates u (at the current time) and returns a
// [TypeUpdateSubscription] task whose payload leaves out the fields the
// OperateType does not use ([Update.Unused]). If u.Meta is nil it gets one with the
// current schema and enqueue time and no version (a worker assigns one at
// first pick-up; use a [Producer] for versions taken at enqueue time).
//
// Default options: queue [DefaultLiveQueue], MaxRetry [DefaultMaxRetry],
// Retention [DefaultRetention], Timeout [DefaultTimeout], and, when
// u.IdempotencyKey is set, TaskID [TaskIDForKey](u.IdempotencyKey). Options
// in opts, and options given at enqueue time, override them.
func NewTask(u Update, opts ...asynq.Option) (*asynq.Task, error) {
	return newTask(u, time.Now(), opts)
}

func newTask(u Update, now time.Time, opts []asynq.Option) (*asynq.Task, error) {
	u.Normalize()
	if err := u.Validate(now); err != nil {
		return nil, err
	}
	u.DropUnused() // the API ignores them; the job carries what it sends
	if u.Meta == nil {
		u.Meta = &Meta{EnqueuedAt: now.UTC()}
	} else {
		m := *u.Meta // never write through the caller's pointer
		u.Meta = &m
	}
	if u.Meta.Schema == 0 {
		u.Meta.Schema = SchemaVersion
	}
	if u.Meta.EnqueuedAt.IsZero() {
		u.Meta.EnqueuedAt = now.UTC()
	}
	payload, err := json.Marshal(u)
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeUpdateSubscription, payload, append(defaultOptions(u), opts...)...), nil
}

func defaultOptions(u Update) []asynq.Option {
	o := []asynq.Option{
		asynq.Queue(DefaultLiveQueue),
		asynq.MaxRetry(DefaultMaxRetry),
		asynq.Retention(DefaultRetention),
		asynq.Timeout(DefaultTimeout),
	}
	if u.IdempotencyKey != "" {
		o = append(o, asynq.TaskID(TaskIDForKey(u.IdempotencyKey)))
	}
	return o
}

// Decode reads a [TypeUpdateSubscription] payload. It fails, with an error
// wrapping [ErrMalformed], when the payload is not a JSON object of known
// keys, when its schema is newer than [SchemaVersion] (also wrapping
// [ErrUnsupportedSchema]) or negative, or when SubsId, PhoneNoX or
// OperateType is missing, or when SubsId or a phone number holds a control
// character (also wrapping a [*ValidationError]). Values are
// normalized ([Update.Normalize]); the other rules of [Update.Validate] are
// left to the API, since some of them depend on the time of the call.
//
// A payload without "_meta" (enqueued with plain asynq) decodes with a nil
// Meta.
func Decode(payload []byte) (Update, error) {
	var u Update
	// UnmarshalJSON itself, not json.Unmarshal: it checks the whole payload
	// in its one pass, which json.Unmarshal would scan once more before.
	if err := u.UnmarshalJSON(payload); err != nil {
		return Update{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if u.Meta != nil {
		switch s := u.Meta.Schema; {
		case s > SchemaVersion:
			return Update{}, fmt.Errorf("%w: %w: _meta.schema is %d, this code understands up to %d: upgrade the worker",
				ErrMalformed, ErrUnsupportedSchema, s, SchemaVersion)
		case s < 0:
			return Update{}, fmt.Errorf("%w: _meta.schema is %d, want 1 to %d", ErrMalformed, s, SchemaVersion)
		}
		if u.Meta.Version < 0 {
			return Update{}, fmt.Errorf("%w: _meta.version is %d, want a positive number or none", ErrMalformed, u.Meta.Version)
		}
	}
	u.Normalize()
	var ps []Problem
	for _, f := range [...]string{"SubsId", "PhoneNoX", "OperateType"} {
		if *FieldValue(&u, f) == "" {
			ps = append(ps, Problem{Field: f, Reason: "required"})
		}
	}
	for _, f := range [...]string{"SubsId", "PhoneNoX", "PhoneNoA", "PhoneNoB"} {
		// Validate wants these digits only; a control character in one
		// is never a job a producer of this package made.
		if i := strings.IndexFunc(*FieldValue(&u, f), unicode.IsControl); i >= 0 {
			ps = append(ps, Problem{Field: f, Reason: fmt.Sprintf("holds a control character at byte %d: want digits only", i)})
		}
	}
	if len(ps) > 0 {
		return Update{}, fmt.Errorf("%w: %w", ErrMalformed, &ValidationError{Problems: ps})
	}
	return u, nil
}
