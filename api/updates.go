package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/dyplsq/dyplsq/tasks"
)

// maxKeyLength bounds an Idempotency-Key header.
const maxKeyLength = 255

// postUpdates is POST /v1/updates.
func (s *Server) postUpdates(w http.ResponseWriter, r *http.Request) {
	if !isJSON(r.Header.Get("Content-Type")) {
		fail(w, r, http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as Content-Type: application/json", nil)
		return
	}
	queue, ok := s.queueOf(r.URL.Query())
	if !ok {
		fail(w, r, http.StatusBadRequest, "bad_request", "queue must be live or bulk", nil)
		return
	}
	durable, msg := durableOf(r.URL.Query())
	if msg != "" {
		fail(w, r, http.StatusBadRequest, "bad_request", msg, nil)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > maxKeyLength || !printableKey(key) {
		fail(w, r, http.StatusBadRequest, "bad_request", "Idempotency-Key must be 1 to 255 printable ASCII characters", nil)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		fail(w, r, http.StatusRequestEntityTooLarge, "payload_too_large", "the body is larger than the limit of "+itoa(int(s.cfg.MaxBodyBytes))+" bytes: send fewer updates per request", nil)
		return
	case err != nil:
		fail(w, r, http.StatusBadRequest, "bad_request", "cannot read the body", nil)
		return
	}
	raws, msg := splitItems(body)
	if msg != "" {
		fail(w, r, http.StatusBadRequest, "invalid_json", msg, nil)
		return
	}
	info(r).items = len(raws)
	items, problems := s.decodeItems(raws, s.cfg.Now())
	if len(problems) > 0 {
		fail(w, r, http.StatusUnprocessableEntity, "validation_failed",
			itoa(len(problems))+" problem(s) in the request: nothing was queued; fix them and send it again", problems)
		return
	}
	res, apiErr := s.enqueue(r.Context(), r, items, queue, key, durable)
	if apiErr != nil {
		fail(w, r, apiErr.status, apiErr.code, apiErr.message, nil)
		return
	}
	info(r).batch = res.BatchID
	if e := res.Items[0].DurableError; e != nil {
		info(r).code = e.Code // queued all the same: the request log says it
	}
	writeJSON(w, http.StatusAccepted, res)
}

// isJSON reports whether a Content-Type is application/json (UTF-8).
func isJSON(ct string) bool {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
}

// printableKey reports whether an Idempotency-Key (or none) is printable
// ASCII; spaces are allowed inside.
func printableKey(k string) bool {
	for i := 0; i < len(k); i++ {
		if k[i] < ' ' || k[i] > '~' {
			return false
		}
	}
	return true
}

func (s *Server) queueOf(q map[string][]string) (string, bool) {
	vs := q["queue"]
	if len(vs) > 1 {
		return "", false
	}
	if len(vs) == 0 {
		return s.cfg.LiveQueue, true
	}
	switch vs[0] {
	case "live", "", s.cfg.LiveQueue:
		return s.cfg.LiveQueue, true
	case "bulk", s.cfg.BulkQueue:
		return s.cfg.BulkQueue, true
	}
	return "", false
}

// splitItems reads a body that is one JSON object or an array of them.
// It returns the items' raw JSON, or a message saying what is wrong with
// the body as a whole.
func splitItems(body []byte) ([]json.RawMessage, string) {
	t := bytes.TrimSpace(body)
	if len(t) == 0 {
		return nil, "the body is empty: send one update object or an array of them"
	}
	if !json.Valid(t) {
		return nil, "the body is not valid JSON"
	}
	switch t[0] {
	case '{':
		return []json.RawMessage{t}, ""
	case '[':
		var raws []json.RawMessage
		if err := json.Unmarshal(t, &raws); err != nil {
			return nil, "the body is not a JSON array of objects"
		}
		switch {
		case len(raws) == 0:
			return nil, "the array is empty: send at least one update"
		case len(raws) > MaxItems:
			return nil, "the array has " + itoa(len(raws)) + " updates, more than " + itoa(MaxItems) + ": split it"
		}
		return raws, ""
	}
	return nil, "the body must be an update object or an array of them"
}

// decodeItems decodes, normalizes and validates every item, and returns
// every problem of every item.
func (s *Server) decodeItems(raws []json.RawMessage, now time.Time) ([]tasks.Update, []detail) {
	items := make([]tasks.Update, len(raws))
	var problems []detail
	keys := map[string]int{} // IdempotencyKey → the first item that has it
	for i, raw := range raws {
		at := func(field, reason string) {
			idx := i
			problems = append(problems, detail{Index: &idx, Field: field, Reason: reason})
		}
		var u tasks.Update
		if err := json.Unmarshal(raw, &u); err != nil {
			at("", "not a valid update: "+err.Error())
			continue
		}
		if u.Meta != nil {
			at("_meta", "set by dyplsq, not by a client: leave it out")
		}
		u.Meta = nil
		u.Normalize()
		if err := u.Validate(now); err != nil {
			var ve *tasks.ValidationError
			if !errors.As(err, &ve) {
				at("", err.Error())
				continue
			}
			for _, p := range ve.Problems {
				at(p.Field, p.Reason)
			}
		}
		if k := strings.TrimSpace(u.IdempotencyKey); k != "" {
			if first, ok := keys[k]; ok {
				at("IdempotencyKey", "the same as item "+itoa(first)+"'s: one request cannot queue two updates under one key")
			} else {
				keys[k] = i
			}
		}
		items[i] = u
	}
	return items, problems
}
