package deadletter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dyplsq/dyplsq/tasks"
)

// jobFields are the few payload fields a record copies. They are decoded
// here rather than through package tasks so that a record can be written for
// any payload, however malformed.
type jobFields struct {
	SubsId, OperateType string
	Version             int64
	Batch               string
	Line                int
}

// metaKey is the payload key of dyplsq's metadata object.
const metaKey = "_meta"

// decodeFields reads what it can of payload and ignores the rest.
func decodeFields(payload []byte) jobFields {
	var f jobFields
	var top map[string]json.RawMessage
	if json.Unmarshal(payload, &top) != nil {
		return f
	}
	f.SubsId = scalar(lookup(top, "SubsId"))
	f.OperateType = scalar(lookup(top, "OperateType"))
	var meta map[string]json.RawMessage
	if json.Unmarshal(lookup(top, metaKey), &meta) != nil {
		return f
	}
	f.Version, _ = strconv.ParseInt(scalar(lookup(meta, "version")), 10, 64)
	f.Batch = scalar(lookup(meta, "batch"))
	line, _ := strconv.ParseInt(scalar(lookup(meta, "line")), 10, 0)
	f.Line = int(line)
	return f
}

// lookup returns m's value for key, matching the key in any case as the
// payload decoder of package tasks does; an exact match wins.
func lookup(m map[string]json.RawMessage, key string) json.RawMessage {
	if v, ok := m[key]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

// scalar returns the text of a JSON string, number or boolean, and "" for
// anything else.
func scalar(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		return s
	case '{', '[', 'n':
		return ""
	default:
		return string(raw)
	}
}

// versionTime returns when the job's version was taken, or the earliest it
// can have been: the payload's "_meta" "enqueued_at", else (a plain-asynq
// job, versioned at its first pick-up) tasks.MaxJobAge before its death.
// It is zero when neither is known.
func versionTime(payload []byte, r Record) time.Time {
	var p struct {
		Meta *struct {
			EnqueuedAt time.Time `json:"enqueued_at"`
		} `json:"_meta"`
	}
	if json.Unmarshal(payload, &p) == nil && p.Meta != nil && p.Meta.EnqueuedAt.Year() >= 2000 {
		return p.Meta.EnqueuedAt
	}
	if r.DiedAt.IsZero() {
		return time.Time{}
	}
	return r.DiedAt.Add(-tasks.MaxJobAge)
}

// errNotObject reports a payload a requeue cannot rewrite.
var errNotObject = errors.New("payload is not a JSON object (malformed: export it, fix it and enqueue it again)")

// requeuePayload returns the payload of record r with its "_meta" object
// marked as a requeue at now: "requeues" goes up by one, "requeued_at" is
// now, "source" is "requeue" and "requeued_from" is the task id. The job
// keeps its version: the payload's, or the one the worker gave it
// (r.Version) when the payload has none; "ambiguous" passes on that an
// attempt may have applied it. Everything else is kept, and so are the
// bytes outside "_meta".
func requeuePayload(payload []byte, r Record, now time.Time) ([]byte, error) {
	taskID := r.TaskID
	start, end, err := metaSpan(payload)
	if err != nil {
		return nil, err
	}
	meta := map[string]json.RawMessage{}
	if start >= 0 {
		old := bytes.TrimSpace(payload[start:end])
		if !bytes.Equal(old, []byte("null")) {
			if err := json.Unmarshal(old, &meta); err != nil || meta == nil {
				return nil, fmt.Errorf("payload %s is not a JSON object", metaKey)
			}
		}
	}
	requeues, _ := strconv.ParseInt(scalar(meta["requeues"]), 10, 64)
	set := func(k string, v any) {
		b, _ := json.Marshal(v)
		meta[k] = b
	}
	set("requeues", requeues+1)
	set("requeued_at", now.UTC().Format(time.RFC3339))
	set("source", "requeue")
	set("requeued_from", taskID)
	if v, _ := strconv.ParseInt(scalar(meta["version"]), 10, 64); v == 0 && r.Version > 0 {
		// A plain-asynq job got its version when first picked up: it
		// keeps it, so a newer update applied meanwhile still wins.
		set("version", r.Version)
	}
	if r.Ambiguous {
		set("ambiguous", true)
	}
	if t, _ := time.Parse(time.RFC3339Nano, scalar(meta["enqueued_at"])); (t.IsZero() || t.Year() < 2000) && !r.DiedAt.IsZero() {
		// A plain-asynq job says not when its version was taken; its
		// first requeue writes the earliest it can have been, so that
		// later requeues keep to tasks.VersionWindow too.
		set("enqueued_at", versionTime(payload, r).UTC().Format(time.RFC3339Nano))
	}
	mb, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Grow(len(payload) + 96)
	if start >= 0 {
		out.Write(payload[:start])
		out.Write(mb)
		out.Write(payload[end:])
		return out.Bytes(), nil
	}
	// No "_meta" yet: add it before the closing brace.
	closing := bytes.LastIndexByte(payload, '}')
	body := bytes.TrimSpace(payload[:closing])
	out.Write(payload[:closing])
	if !bytes.HasSuffix(body, []byte("{")) {
		out.WriteByte(',')
	}
	out.WriteString(`"` + metaKey + `":`)
	out.Write(mb)
	out.Write(payload[closing:])
	return out.Bytes(), nil
}

// metaSpan finds the value of the top-level "_meta" key (any case) in a JSON
// object: its byte offsets, or start -1 when there is none.
func metaSpan(payload []byte) (start, end int, err error) {
	if !json.Valid(payload) {
		return 0, 0, errNotObject
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	tok, err := dec.Token()
	if d, ok := tok.(json.Delim); err != nil || !ok || d != '{' {
		return 0, 0, errNotObject
	}
	start = -1
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return 0, 0, err
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return 0, 0, err
		}
		if key, _ := tok.(string); strings.EqualFold(key, metaKey) {
			if start >= 0 {
				return 0, 0, fmt.Errorf("payload has %s twice", metaKey)
			}
			end = int(dec.InputOffset())
			start = end - len(raw)
		}
	}
	return start, end, nil
}
