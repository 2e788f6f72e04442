package monitor

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"

	"github.com/dyplsq/dyplsq/mask"
)

// maskAPI wraps asynqmon's handler so that every response body of its API
// is masked before it leaves the process. asynqmon formats payloads and
// results through the formatters, but writes error messages (a task's
// last error), scheduler options, queue and group names and its own error
// texts as they are stored; this catches all of them.
//
// The body is buffered whole (the API answers with one JSON document), then
// JSON bodies get every string value masked, keeping the JSON valid and the
// numbers intact, and any other body is masked as text. Content-Length is
// set to the masked length.
func maskAPI(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bw := &bufferedWriter{header: w.Header(), status: http.StatusOK}
		next.ServeHTTP(bw, r)

		body := bw.body.Bytes()
		h := w.Header()
		h.Del("Content-Length")
		h.Set("Cache-Control", "no-store")
		if json.Valid(body) {
			body = maskJSON(body, true)
			if h.Get("Content-Type") == "" {
				h.Set("Content-Type", "application/json")
			}
		} else if len(body) > 0 {
			body = []byte(mask.Text(string(body)))
		}
		if bodyAllowed(bw.status) {
			h.Set("Content-Length", strconv.Itoa(len(body)))
		}
		w.WriteHeader(bw.status)
		if bodyAllowed(bw.status) && r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
	})
}

// bodyAllowed reports whether a response with this status may carry a body.
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// bufferedWriter keeps a handler's response in memory. Headers go straight
// to the real writer's header map, which is not sent before the wrapper
// calls WriteHeader.
type bufferedWriter struct {
	header      http.Header
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header { return b.header }

func (b *bufferedWriter) WriteHeader(status int) {
	if !b.wroteHeader {
		b.status, b.wroteHeader = status, true
	}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	b.wroteHeader = true
	return b.body.Write(p)
}

// generatedID matches task, server and scheduler-entry ids that asynq and
// package tasks generate (UUIDs and "idem-" plus 32 hex digits). Their hex
// digits can happen to form a phone-shaped run, but they are not numbers
// of anyone, and the UI needs them whole to open and act on a task.
var generatedID = regexp.MustCompile(`^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|idem-[0-9a-f]{32})$`)

// maskJSON returns the valid JSON document doc with [mask.Text] applied to
// every string (object keys included), decoded first so that escapes
// cannot hide digits. Everything else is copied byte for byte. With
// keepIDs, strings shaped like generated ids are left alone.
func maskJSON(doc []byte, keepIDs bool) []byte {
	var out []byte
	last := 0
	for i := 0; i < len(doc); i++ {
		if doc[i] != '"' {
			continue
		}
		end := i + 1
		for end < len(doc) && doc[end] != '"' {
			if doc[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(doc) {
			break // not reached for valid JSON
		}
		if repl, ok := maskLiteral(doc[i:end+1], keepIDs); ok {
			if out == nil {
				out = make([]byte, 0, len(doc)+16)
			}
			out = append(out, doc[last:i]...)
			out = append(out, repl...)
			last = end + 1
		}
		i = end
	}
	if out == nil {
		return doc
	}
	return append(out, doc[last:]...)
}

// maskLiteral masks one JSON string literal (quotes included) and reports
// whether it changed.
func maskLiteral(lit []byte, keepIDs bool) ([]byte, bool) {
	if !mayHoldDigits(lit) {
		return nil, false
	}
	var s string
	if err := json.Unmarshal(lit, &s); err != nil {
		return nil, false
	}
	if keepIDs && generatedID.MatchString(s) {
		return nil, false
	}
	m := mask.Text(s)
	if m == s {
		return nil, false
	}
	enc, err := json.Marshal(m)
	if err != nil {
		return nil, false
	}
	return enc, true
}

// mayHoldDigits reports whether a JSON string literal can hold a digit:
// an ASCII one, an escape, or a multi-byte character (full-width digits
// count as digits for [mask.Text]).
func mayHoldDigits(lit []byte) bool {
	for _, c := range lit {
		if c >= '0' && c <= '9' || c == '\\' || c >= 0x80 {
			return true
		}
	}
	return false
}
