package tasks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/dyplsq/dyplsq/mask"
)

// TypeUpdateSubscription is the asynq task type of a binding update. Queued
// tasks carry it, so it is never renamed.
const TypeUpdateSubscription = "dypls:update_subscription"

// SchemaVersion is the payload schema this package writes and the newest one
// [Decode] accepts. It goes up only when a change would make an older worker
// misread a payload.
const SchemaVersion = 1

// Default queue names. The Go API ([Producer], [NewTask]) enqueues to the live
// queue; the enqueue CLI uses the bulk queue, which the worker serves with a
// lower weight so a large batch never starves live updates.
const (
	DefaultLiveQueue = "dyplsq-live"
	DefaultBulkQueue = "dyplsq-bulk"
)

// Update is the payload of a [TypeUpdateSubscription] task: one
// UpdateSubscription call. The JSON keys are the API's own parameter names,
// the same names the enqueue CLI reads as CSV headers and JSON Lines keys.
//
// Every value is a string, exactly as the API receives it: CallDisplayType is
// "1", IsRecordingEnabled and ASRStatus are "true" or "false". An empty value
// means "not set" and is never sent to the API.
type Update struct {
	PoolKey            string `json:"PoolKey,omitempty"`            // number pool key; PoolKey or ProductType is required
	ProductType        string `json:"ProductType,omitempty"`        // AXB_170, AXN_170, AXN_95 or AXN_EXTENSION_REUSE
	SubsId             string `json:"SubsId,omitempty"`             // binding id (required)
	PhoneNoX           string `json:"PhoneNoX,omitempty"`           // X number of the binding (required)
	OperateType        string `json:"OperateType,omitempty"`        // one of OperateTypes (required)
	PhoneNoA           string `json:"PhoneNoA,omitempty"`           // new A number, for updateNoA
	PhoneNoB           string `json:"PhoneNoB,omitempty"`           // new B number, for updateNoB
	Expiration         string `json:"Expiration,omitempty"`         // new expiry, for updateExpire: "2006-01-02 15:04:05", Beijing time
	GroupId            string `json:"GroupId,omitempty"`            // number group id, for updateAxgGroup
	CallRestrict       string `json:"CallRestrict,omitempty"`       // one of CallRestricts, for updateCallRestrict
	CallDisplayType    string `json:"CallDisplayType,omitempty"`    // "1", for updateCallDisplayType
	OutId              string `json:"OutId,omitempty"`              // new OutId, for updateOutId
	IsRecordingEnabled string `json:"IsRecordingEnabled,omitempty"` // "true" or "false", for updateIsRecordingEnabled
	RingConfig         string `json:"RingConfig,omitempty"`         // JSON of ring-back tone codes (optional)
	ASRStatus          string `json:"ASRStatus,omitempty"`          // "true" or "false" (optional)
	ASRModelId         string `json:"ASRModelId,omitempty"`         // speech recognition model id (optional)

	// IdempotencyKey, when set, makes enqueueing idempotent: a second
	// enqueue with the same key to the same queue is reported as already
	// queued while the first task exists (pending, retrying, archived, or
	// completed within its retention). It is never sent to the API.
	IdempotencyKey string `json:",omitempty"`

	// Meta is what dyplsq adds to the payload. Producers normally leave it
	// nil: [Producer.Enqueue] and [NewTask] fill it in.
	Meta *Meta `json:"_meta,omitempty"`
}

// Meta is the metadata dyplsq keeps in the "_meta" object of every payload.
// It is designed once for producers, the enqueue CLI and the worker; new
// optional keys may be added without a schema change, and a decoder ignores
// keys it does not know.
type Meta struct {
	// Schema is the payload schema version ([SchemaVersion] when written by
	// this package). A worker refuses payloads with a newer schema.
	Schema int `json:"schema"`

	// Version orders updates of one binding field (SubsId, OperateType):
	// the newest version wins and an older one is never applied after it.
	// It comes from one Redis counter ([VersionKey]) at enqueue time, so it
	// follows enqueue order. 0 means none: a worker assigns one when it
	// first picks the job up.
	Version int64 `json:"version,omitempty"`

	// EnqueuedAt is when the job was enqueued (UTC).
	EnqueuedAt time.Time `json:"enqueued_at"`

	// Batch is the id of the CLI batch the job belongs to, if any.
	Batch string `json:"batch,omitempty"`

	// Line is the job's line in the batch's input file, if any: 1-based,
	// as an editor counts, so a CSV header is line 1.
	Line int `json:"line,omitempty"`

	// Source says who enqueued the job: "api" (the Go API), "cli" (the
	// enqueue CLI) or "requeue" (a dead letter sent back).
	Source string `json:"source,omitempty"`

	// RequeuedFrom is the task id of the dead job this one replays.
	RequeuedFrom string `json:"requeued_from,omitempty"`

	// Requeues counts how often the job was sent back from the dead-letter
	// queue. Each requeue gives it a fresh attempt budget.
	Requeues int `json:"requeues,omitempty"`

	// RequeuedAt is when the job was last requeued; its max age counts
	// from then.
	RequeuedAt time.Time `json:"requeued_at,omitzero"`

	// Ambiguous is set by a requeue when an attempt before the job died may
	// have applied the update without the worker knowing, so that a
	// conflict on the replay is settled by reading the binding.
	Ambiguous bool `json:"ambiguous,omitempty"`
}

// Sources written to [Meta.Source].
const (
	SourceAPI     = "api"
	SourceCLI     = "cli"
	SourceRequeue = "requeue"
)

// Fields lists the sixteen UpdateSubscription parameters an [Update] carries,
// in the order the API documents them. They are the JSON keys of a payload
// and the CSV headers and JSON Lines keys the enqueue CLI reads.
var Fields = append([]string(nil), apiFields[:]...)

// apiFields is the package's own copy of Fields, safe from callers.
var apiFields = [...]string{
	"PoolKey", "ProductType", "SubsId", "PhoneNoX", "OperateType",
	"PhoneNoA", "PhoneNoB", "Expiration", "GroupId", "CallRestrict",
	"CallDisplayType", "OutId", "IsRecordingEnabled", "RingConfig",
	"ASRStatus", "ASRModelId",
}

// allColumns is the package's own copy of KnownColumns.
var allColumns = append(append([]string(nil), apiFields[:]...), FieldIdempotencyKey)

// FieldIdempotencyKey is the name of the optional idempotency key column.
const FieldIdempotencyKey = "IdempotencyKey"

// KnownColumns is [Fields] followed by "IdempotencyKey": every column an
// input file may have besides ignored ones (names starting with "_").
var KnownColumns = append([]string(nil), allColumns...)

// canonical maps the lower-case form of every known column to its name.
var canonical = func() map[string]string {
	m := make(map[string]string, len(allColumns))
	for _, f := range allColumns {
		m[strings.ToLower(f)] = f
	}
	return m
}()

// CanonicalField returns the canonical spelling of a column name given in any
// case ("subsid", "SUBSID" → "SubsId"), ignoring surrounding white space. It
// knows the names in [KnownColumns] and reports false for any other.
func CanonicalField(name string) (string, bool) {
	if exactField(new(Update), name) != nil {
		return name, true // already canonical: no lower-casing, no allocation
	}
	f, ok := canonical[strings.ToLower(trimSpace(name))]
	return f, ok
}

// FieldValue returns a pointer to the field of u named name (any case, see
// [CanonicalField]), including IdempotencyKey, or nil if there is no such
// field. It lets readers of CSV and JSON Lines files set fields by name.
func FieldValue(u *Update, name string) *string {
	if p := exactField(u, name); p != nil {
		return p
	}
	f, ok := CanonicalField(name)
	if !ok {
		return nil
	}
	return exactField(u, f)
}

// exactField returns a pointer to the field of u whose name is exactly name
// (a [KnownColumns] spelling), or nil. It is the allocation-free path of
// [FieldValue] and [CanonicalField] for names the code itself spells.
func exactField(u *Update, name string) *string {
	switch name {
	case "PoolKey":
		return &u.PoolKey
	case "ProductType":
		return &u.ProductType
	case "SubsId":
		return &u.SubsId
	case "PhoneNoX":
		return &u.PhoneNoX
	case "OperateType":
		return &u.OperateType
	case "PhoneNoA":
		return &u.PhoneNoA
	case "PhoneNoB":
		return &u.PhoneNoB
	case "Expiration":
		return &u.Expiration
	case "GroupId":
		return &u.GroupId
	case "CallRestrict":
		return &u.CallRestrict
	case "CallDisplayType":
		return &u.CallDisplayType
	case "OutId":
		return &u.OutId
	case "IsRecordingEnabled":
		return &u.IsRecordingEnabled
	case "RingConfig":
		return &u.RingConfig
	case "ASRStatus":
		return &u.ASRStatus
	case "ASRModelId":
		return &u.ASRModelId
	case FieldIdempotencyKey:
		return &u.IdempotencyKey
	}
	return nil
}

// Params returns the API parameters of u that are set, keyed by their API
// names. IdempotencyKey and Meta are not API parameters and are left out.
func (u Update) Params() map[string]string {
	m := make(map[string]string, 8)
	for _, f := range apiFields {
		if v := *FieldValue(&u, f); v != "" {
			m[f] = v
		}
	}
	return m
}

// Normalize trims surrounding white space from every value: ASCII spaces,
// tabs and line breaks, the full-width space U+3000 and every other Unicode
// space, plus the zero-width space and byte-order mark that copying from
// spreadsheets leaves behind. It also lower-cases the boolean fields
// IsRecordingEnabled and ASRStatus when they spell true or false in another
// case ("TRUE", "False"), as spreadsheets write them.
func (u *Update) Normalize() {
	for _, f := range allColumns {
		p := FieldValue(u, f)
		*p = trimSpace(*p)
	}
	for _, p := range []*string{&u.IsRecordingEnabled, &u.ASRStatus} {
		if strings.EqualFold(*p, "true") || strings.EqualFold(*p, "false") {
			*p = strings.ToLower(*p)
		}
	}
}

func isTrimmable(r rune) bool {
	return unicode.IsSpace(r) || r == '\u200b' || r == '\ufeff'
}

func trimSpace(s string) string { return strings.TrimFunc(s, isTrimmable) }

// UnmarshalJSON decodes a payload or a JSON Lines row. Keys match the field
// names in any case. A value may be a JSON string, number (written as its
// literal text, so 1 becomes "1" and long ids keep every digit), boolean
// ("true"/"false") or null (not set); RingConfig may also be a JSON object,
// kept as its compact text. The "_meta" key holds [Meta]; other keys
// starting with "_" are ignored. An unknown key or a key given twice is an
// error. Only blanks may follow the object.
func (u *Update) UnmarshalJSON(data []byte) error {
	if v, ok := decodeOnePass(data); ok {
		*u = v
		return nil
	}
	return u.decodeTokens(data)
}

// decodeTokens is UnmarshalJSON for every payload: token by token, each
// value read whole and then converted.
func (u *Update) decodeTokens(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("not a JSON object: starts with %s", describeToken(tok))
	}
	var out Update
	seen := make(map[string]string)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string) // object keys are always strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("key %s: %w", quoteKey(key), err)
		}
		if strings.EqualFold(key, "_meta") {
			if prev, dup := seen["_meta"]; dup {
				return fmt.Errorf("key %s given twice (also as %s)", quoteKey(key), quoteKey(prev))
			}
			seen["_meta"] = key
			if isNull(raw) {
				continue
			}
			var m Meta
			if err := json.Unmarshal(raw, &m); err != nil {
				return fmt.Errorf("_meta: %w", err)
			}
			out.Meta = &m
			continue
		}
		if strings.HasPrefix(key, "_") {
			continue
		}
		name, ok := CanonicalField(key)
		if !ok {
			return fmt.Errorf("unknown key %s (known keys: %s)", quoteKey(key), strings.Join(allColumns, ", "))
		}
		if prev, dup := seen[name]; dup {
			return fmt.Errorf("key %s given twice (also as %s)", quoteKey(key), quoteKey(prev))
		}
		seen[name] = key
		v, err := scalarText(name, raw)
		if err != nil {
			return err
		}
		*FieldValue(&out, name) = v
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return err
	}
	// Decode hands a payload here directly, not through json.Unmarshal
	// (which would first scan it whole): nothing but blanks may follow.
	if i := skipBlank(data, int(dec.InputOffset())); i < len(data) {
		return fmt.Errorf("invalid character %q after top-level value", data[i])
	}
	*u = out
	return nil
}

// scalarText turns one JSON value into the string the API receives.
func scalarText(name string, raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		return s, nil
	case 'n': // null
		return "", nil
	case 't', 'f': // true, false
		return string(raw), nil
	case '{':
		if name == "RingConfig" {
			var b bytes.Buffer
			if err := json.Compact(&b, raw); err != nil {
				return "", fmt.Errorf("%s: %w", name, err)
			}
			return b.String(), nil
		}
		return "", fmt.Errorf("%s: want a string, number or boolean, got an object", name)
	case '[':
		return "", fmt.Errorf("%s: want a string, number or boolean, got an array", name)
	default: // a number: keep its literal text
		return string(raw), nil
	}
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func describeToken(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		return string(v)
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

// quoteKey quotes a JSON key for a message with its phone numbers masked,
// before quoting (an escape such as \u00a0 would split a number's digits)
// and after.
func quoteKey(k string) string {
	return mask.Text(strconv.Quote(mask.Text(k)))
}
