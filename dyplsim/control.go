package dyplsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// maxControlBody caps a control-plane request body.
const maxControlBody = 64 << 20

// controlPaths are the control-plane endpoints; a method without a route
// on one of them is answered 405.
var controlPaths = []string{"/_sim/health", "/_sim/bindings", "/_sim/stats", "/_sim/faults", "/_sim/reset", "/_sim/quota",
	"/_sim/sts", "/_sim/credentials"}

// controlMux routes the JSON control plane described in the package
// documentation, and answers every other path but "/" with 404.
func (s *Sim) controlMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_sim/health", func(w http.ResponseWriter, _ *http.Request) {
		controlJSON(w, map[string]string{"Status": "ok"})
	})
	mux.HandleFunc("GET /_sim/bindings", s.getBindings)
	mux.HandleFunc("POST /_sim/bindings", s.postBindings)
	mux.HandleFunc("DELETE /_sim/bindings", s.deleteBinding)
	mux.HandleFunc("GET /_sim/stats", func(w http.ResponseWriter, _ *http.Request) { controlJSON(w, s.Stats()) })
	mux.HandleFunc("GET /_sim/faults", func(w http.ResponseWriter, _ *http.Request) { controlJSON(w, s.Faults()) })
	mux.HandleFunc("PUT /_sim/faults", s.putFaults)
	mux.HandleFunc("POST /_sim/faults", s.putFaults)
	mux.HandleFunc("DELETE /_sim/faults", func(w http.ResponseWriter, _ *http.Request) {
		s.SetFaults(nil)
		controlJSON(w, s.Faults())
	})
	mux.HandleFunc("POST /_sim/reset", func(w http.ResponseWriter, _ *http.Request) {
		s.Reset()
		s.log.Info().Msg("reset")
		controlJSON(w, map[string]string{"Status": "reset"})
	})
	mux.HandleFunc("GET /_sim/quota", func(w http.ResponseWriter, _ *http.Request) { controlJSON(w, s.Quota()) })
	mux.HandleFunc("PUT /_sim/quota", s.putQuota)
	mux.HandleFunc("GET /_sim/credentials", s.serveCredentials)
	mux.HandleFunc("GET /_sim/sts", func(w http.ResponseWriter, _ *http.Request) { controlJSON(w, s.STS()) })
	mux.HandleFunc("PUT /_sim/sts", s.putSTS)
	for _, p := range controlPaths {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			controlError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path)
		})
	}
	mux.HandleFunc("/_sim/", func(w http.ResponseWriter, r *http.Request) {
		controlError(w, http.StatusNotFound, "unknown control endpoint "+quoteShort(r.URL.Path))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		controlError(w, http.StatusNotFound, "not found: the API is served at / and the control plane under /_sim/")
	})
	return mux
}

// getBindings answers one binding (?SubsId=) or all of them.
func (s *Sim) getBindings(w http.ResponseWriter, r *http.Request) {
	if id := r.URL.Query().Get("SubsId"); id != "" {
		b, ok := s.Binding(id)
		if !ok {
			controlError(w, http.StatusNotFound, "binding "+quoteShort(id)+" not found")
			return
		}
		controlJSON(w, b)
		return
	}
	controlJSON(w, s.Bindings())
}

// postBindings stores a binding or an array of them.
func (s *Sim) postBindings(w http.ResponseWriter, r *http.Request) {
	var in []Binding
	single, err := decodeOneOrMany(r, &in)
	if err != nil {
		controlError(w, http.StatusBadRequest, err.Error())
		return
	}
	out := make([]Binding, 0, len(in))
	for i, b := range in {
		stored, err := s.TryPutBinding(b)
		if err != nil {
			controlError(w, http.StatusBadRequest, fmt.Sprintf("binding %d: %v", i, err))
			return
		}
		out = append(out, stored)
	}
	s.log.Info().Int("count", len(out)).Msg("bindings stored")
	if single {
		controlJSON(w, out[0])
		return
	}
	controlJSON(w, out)
}

// deleteBinding removes the binding ?SubsId= names.
func (s *Sim) deleteBinding(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("SubsId")
	if id == "" {
		controlError(w, http.StatusBadRequest, "SubsId query parameter is required")
		return
	}
	if !s.DeleteBinding(id) {
		controlError(w, http.StatusNotFound, "binding "+quoteShort(id)+" not found")
		return
	}
	controlJSON(w, map[string]string{"Deleted": id})
}

// putFaults replaces (PUT) or extends (POST) the fault rules.
func (s *Sim) putFaults(w http.ResponseWriter, r *http.Request) {
	var rules []FaultRule
	if _, err := decodeOneOrMany(r, &rules); err != nil {
		controlError(w, http.StatusBadRequest, err.Error())
		return
	}
	for i, f := range rules {
		if err := f.Validate(); err != nil {
			controlError(w, http.StatusBadRequest, fmt.Sprintf("rule %d: %v", i, err))
			return
		}
	}
	if r.Method == http.MethodPut {
		s.SetFaults(rules)
	} else {
		for _, f := range rules {
			s.AddFault(f)
		}
	}
	s.log.Info().Int("rules", len(s.Faults())).Msg("faults set")
	controlJSON(w, s.Faults())
}

// putQuota changes any of the quota fields.
func (s *Sim) putQuota(w http.ResponseWriter, r *http.Request) {
	var in struct {
		QPS        *float64 `json:"QPS"`
		Burst      *int     `json:"Burst"`
		QueryQPS   *float64 `json:"QueryQPS"`
		QueryBurst *int     `json:"QueryBurst"`
	}
	if err := decodeStrict(r, &in); err != nil {
		controlError(w, http.StatusBadRequest, err.Error())
		return
	}
	if (in.QPS != nil && *in.QPS < 0) || (in.QueryQPS != nil && *in.QueryQPS < 0) ||
		(in.Burst != nil && *in.Burst < 0) || (in.QueryBurst != nil && *in.QueryBurst < 0) {
		controlError(w, http.StatusBadRequest, "QPS, Burst, QueryQPS and QueryBurst must be >= 0")
		return
	}
	q := s.changeQuota(func(q *Quota) {
		if in.QPS != nil {
			q.QPS, q.Burst = *in.QPS, 0 // a new rate gets the default burst...
		}
		if in.Burst != nil {
			q.Burst = *in.Burst // ...unless one is given
		}
		if in.QueryQPS != nil {
			q.QueryQPS, q.QueryBurst = *in.QueryQPS, 0
		}
		if in.QueryBurst != nil {
			q.QueryBurst = *in.QueryBurst
		}
	})
	s.log.Info().Float64("qps", q.QPS).Float64("query_qps", q.QueryQPS).Msg("quota set")
	controlJSON(w, q)
}

// decodeStrict decodes one JSON value, rejecting unknown fields.
func decodeStrict(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxControlBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	if dec.More() {
		return errors.New("invalid JSON body: more than one value")
	}
	return nil
}

// decodeOneOrMany decodes a JSON object or an array of them into *[]T and
// reports whether it was a single object.
func decodeOneOrMany[T any](r *http.Request, out *[]T) (single bool, err error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxControlBody))
	if err != nil {
		return false, fmt.Errorf("reading body: %w", err)
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || string(body) == "null" {
		return false, errors.New("empty body: want a JSON object or array")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if body[0] == '[' {
		err = dec.Decode(out)
	} else {
		var one T
		err = dec.Decode(&one)
		*out = []T{one}
		single = true
	}
	if err != nil {
		return false, fmt.Errorf("invalid JSON body: %w", err)
	}
	if dec.More() {
		return false, errors.New("invalid JSON body: more than one value")
	}
	return single, nil
}

func controlJSON(w http.ResponseWriter, v any) {
	w.Header()["Content-Type"] = contentTypeJSON
	// An encoding error can only come from the connection; the status
	// line is already sent, so there is nothing left to report it to.
	_ = json.NewEncoder(w).Encode(v)
}

func controlError(w http.ResponseWriter, status int, msg string) {
	w.Header()["Content-Type"] = contentTypeJSON
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
