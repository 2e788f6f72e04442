// Package deadletter keeps dyplsq's durable dead-letter records and works
// them: list, export, requeue, purge, and a sweep that writes a record for
// every job that reached the asynq archive without one.
//
// asynq trims its archive silently (10,000 tasks or 90 days per queue) and
// forgets a task id once it is gone, so the archive alone cannot be trusted
// to remember a dead job. A [Record] is written once per dead job, indexed by
// the time it died, and stays until an operator requeues or purges it: it is
// never trimmed and has no TTL.
//
// Records hold the job exactly as queued, phone numbers included, because a
// requeue needs them. Everything meant for people goes through
// [Record.String] and [Record.MaskedPayload], which mask phone numbers.
package deadletter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/dyplsq/dyplsq/mask"
)

// Reasons a job died, written to [Record.Reason].
const (
	ReasonPermanent    = "permanent"
	ReasonAttempts     = "attempts exhausted"
	ReasonMaxAge       = "max age passed"
	ReasonMalformed    = "malformed payload"
	ReasonLeaseExpired = "lease expired on last attempt"
	ReasonOperator     = "archived by an operator"
	// ReasonRetryLimit: asynq's own MaxRetry ran out before the handler's
	// attempt budget, and asynq archived the job.
	ReasonRetryLimit = "asynq retry limit reached"
	// ReasonUnsupportedSchema: the payload was written by a newer producer
	// and no worker that reads its schema ran it before asynq gave up.
	ReasonUnsupportedSchema = "payload schema newer than the workers"
)

// Codes of jobs that reached the asynq archive outside dyplsq's handler,
// written by [Sweeper].
const (
	// CodeLeaseExpired: the job's lease expired on its last attempt (the
	// worker crashed or lost Redis mid-call) and asynq archived it.
	CodeLeaseExpired = "asynq.LeaseExpired"
	// CodeArchived: the job was archived some other way, normally by an
	// operator in the web UI.
	CodeArchived = "asynq.Archived"
	// CodeRetryLimit: asynq archived the job when its MaxRetry ran out.
	CodeRetryLimit = "asynq.MaxRetry"
	// CodeUnsupportedSchema: the job's payload schema is newer than the
	// workers that tried it.
	CodeUnsupportedSchema = "Job.UnsupportedSchema"
)

// Record is the durable dead-letter record of one dead job.
type Record struct {
	// TaskID, Queue and Type identify the asynq task; a requeue reuses them.
	TaskID, Queue, Type string

	// Code is the failure code (an API code such as "isv.BIND_CONFLICT", or
	// one of dyplsq's own); Message its text, phone numbers masked;
	// RequestID the API's RequestId, if any; Class the failure class
	// ("permanent", "transient", ...), if known.
	Code, Message, RequestID, Class string

	// Reason says why the job is dead; see the Reason constants.
	Reason string

	// Attempts is how many attempts were made (or counted) before death.
	Attempts int

	// FirstFailure and LastFailure bound the job's failures (zero when
	// unknown); DiedAt is when it was dead-lettered and orders the index.
	FirstFailure, LastFailure, DiedAt time.Time

	// SubsId, OperateType, Version, Batch and Line are copied from the
	// payload (see [Record.SetPayload]) so records can be filtered and
	// reported without decoding the job.
	SubsId, OperateType string
	Version             int64
	Batch               string
	Line                int

	// Ambiguous says that an attempt of the job may have applied its update
	// without the worker knowing (a timeout, a crash mid-call). A requeue
	// passes it on, so the replay settles a conflict by reading the binding.
	Ambiguous bool

	// Payload is the job exactly as queued. It holds phone numbers by design:
	// show it only through [Record.MaskedPayload]. It is normally JSON but
	// keeps the queued bytes even when they are not (a malformed payload).
	Payload json.RawMessage
}

// recordJSON is the stored form of a Record.
type recordJSON struct {
	TaskID       string          `json:"task_id"`
	Queue        string          `json:"queue"`
	Type         string          `json:"type"`
	Code         string          `json:"code,omitempty"`
	Message      string          `json:"message,omitempty"`
	RequestID    string          `json:"request_id,omitempty"`
	Class        string          `json:"class,omitempty"`
	Reason       string          `json:"reason,omitempty"`
	Attempts     int             `json:"attempts,omitempty"`
	FirstFailure time.Time       `json:"first_failure,omitzero"`
	LastFailure  time.Time       `json:"last_failure,omitzero"`
	DiedAt       time.Time       `json:"died_at,omitzero"`
	SubsId       string          `json:"subs_id,omitempty"`
	OperateType  string          `json:"operate_type,omitempty"`
	Version      int64           `json:"version,omitempty"`
	Batch        string          `json:"batch,omitempty"`
	Line         int             `json:"line,omitempty"`
	Ambiguous    bool            `json:"ambiguous,omitempty"`
	Payload      json.RawMessage `json:"payload,omitempty"`
	PayloadBytes []byte          `json:"payload_bytes,omitempty"` // a payload that is not valid JSON, base64
}

// MarshalJSON encodes the record in its stored form. The payload is kept
// byte for byte: compact JSON is embedded as is, and anything else (JSON with
// white space, or a payload that is not JSON at all) as base64 bytes.
func (r Record) MarshalJSON() ([]byte, error) {
	j := recordJSON{
		TaskID: r.TaskID, Queue: r.Queue, Type: r.Type,
		Code: r.Code, Message: r.Message, RequestID: r.RequestID, Class: r.Class,
		Reason: r.Reason, Attempts: r.Attempts,
		FirstFailure: r.FirstFailure, LastFailure: r.LastFailure, DiedAt: r.DiedAt,
		SubsId: r.SubsId, OperateType: r.OperateType, Version: r.Version,
		Batch: r.Batch, Line: r.Line, Ambiguous: r.Ambiguous,
	}
	if len(r.Payload) > 0 {
		if isCompactJSON(r.Payload) {
			j.Payload = r.Payload
		} else {
			j.PayloadBytes = r.Payload
		}
	}
	return encode(j)
}

// encode is json.Marshal without HTML escaping, which would alter payload
// bytes such as "&" inside strings.
func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// isCompactJSON reports whether p is valid JSON that compacting leaves
// unchanged, so embedding it in a record keeps it byte for byte.
func isCompactJSON(p []byte) bool {
	var b bytes.Buffer
	return json.Compact(&b, p) == nil && bytes.Equal(b.Bytes(), p)
}

// UnmarshalJSON decodes a record written by [Record.MarshalJSON].
func (r *Record) UnmarshalJSON(b []byte) error {
	var j recordJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = Record{
		TaskID: j.TaskID, Queue: j.Queue, Type: j.Type,
		Code: j.Code, Message: j.Message, RequestID: j.RequestID, Class: j.Class,
		Reason: j.Reason, Attempts: j.Attempts,
		FirstFailure: j.FirstFailure, LastFailure: j.LastFailure, DiedAt: j.DiedAt,
		SubsId: j.SubsId, OperateType: j.OperateType, Version: j.Version,
		Batch: j.Batch, Line: j.Line, Ambiguous: j.Ambiguous,
		Payload: j.Payload,
	}
	if len(j.PayloadBytes) > 0 {
		r.Payload = j.PayloadBytes
	}
	return nil
}

// SetPayload stores a copy of payload in the record and fills SubsId,
// OperateType, Version, Batch and Line from it, as far as it can be read.
// Fields the payload does not give keep their values, so a malformed
// payload is kept whole and still leaves a usable record.
func (r *Record) SetPayload(payload []byte) {
	r.Payload = append(json.RawMessage(nil), payload...)
	f := decodeFields(payload)
	if f.SubsId != "" {
		r.SubsId = f.SubsId
	}
	if f.OperateType != "" {
		r.OperateType = f.OperateType
	}
	if f.Version != 0 {
		r.Version = f.Version
	}
	if f.Batch != "" {
		r.Batch = f.Batch
	}
	if f.Line != 0 {
		r.Line = f.Line
	}
}

// MaskedPayload returns the payload as text with phone numbers masked, for
// showing to people.
func (r Record) MaskedPayload() string { return mask.Text(string(r.Payload)) }

// String describes the record on one line for people, phone numbers masked.
func (r Record) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "task %s (queue %s) dead at %s: %s", r.TaskID, r.Queue,
		r.DiedAt.UTC().Format(time.RFC3339), r.Code)
	if r.Reason != "" {
		fmt.Fprintf(&b, " (%s)", r.Reason)
	}
	if r.Message != "" {
		fmt.Fprintf(&b, ": %s", r.Message)
	}
	if r.SubsId != "" || r.OperateType != "" {
		fmt.Fprintf(&b, "; SubsId %s %s", r.SubsId, r.OperateType)
	}
	if r.Batch != "" {
		fmt.Fprintf(&b, "; batch %s line %d", r.Batch, r.Line)
	}
	fmt.Fprintf(&b, "; %d attempts", r.Attempts)
	return mask.Text(b.String())
}
