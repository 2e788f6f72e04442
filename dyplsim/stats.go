package dyplsim

import (
	"sync"
	"sync/atomic"
)

// Outcome labels recorded in Stats for answers that carry no API code.
const (
	StatDrop      = "fault:drop"       // connection closed, nothing applied
	StatDropAfter = "fault:drop_after" // applied, then connection closed
	StatEmpty     = "fault:empty"      // 200 with an empty body
	StatHang      = "fault:hang"       // client left (or server closed) during a hang
	StatHTTP      = "fault:http"       // raw http fault; the status is appended, e.g. "fault:http502"
	StatAborted   = "aborted"          // the simulator was closed while the call waited
)

// Stats counts API calls (the control plane is not counted).
type Stats struct {
	// Total is the number of API calls answered or dropped.
	Total int `json:"Total"`
	// Applied is the number of UpdateSubscription calls whose update took
	// effect: answered OK, or applied before a drop_after or Apply fault.
	Applied int `json:"Applied"`
	// Calls counts calls by Action and then by Code (an API code such as
	// "OK", "isv.BIND_CONFLICT", "Throttling.User", or a fault:* label).
	Calls map[string]map[string]int `json:"Calls"`
	// Overlaps lists the SubsIds that had more than one UpdateSubscription
	// call in flight at once (from the arrival of the request to its
	// answer or dropped connection), with the most that were in flight
	// together. A client that promises one call per binding at a time
	// keeps it empty.
	Overlaps map[string]int `json:"Overlaps,omitempty"`
}

type statKey struct{ action, code string }

// maxStatKeys bounds the distinct (action, code) pairs kept, since unknown
// actions come from clients.
const maxStatKeys = 4096

type stats struct {
	mu      sync.Mutex
	m       map[statKey]int
	total   atomic.Int64
	applied atomic.Int64

	flightMu sync.Mutex
	inFlight map[string]int // SubsId → UpdateSubscription calls in flight; no entry when 0
	overlaps map[string]int // SubsId → most in flight at once, when above 1
}

// maxOverlapKeys bounds the SubsIds remembered in Overlaps.
const maxOverlapKeys = 4096

// enter records an UpdateSubscription call for subsID arriving; leave must
// follow when it ends.
func (s *stats) enter(subsID string) {
	s.flightMu.Lock()
	n := s.inFlight[subsID] + 1
	s.inFlight[subsID] = n
	if n > 1 && n > s.overlaps[subsID] {
		if _, ok := s.overlaps[subsID]; ok || len(s.overlaps) < maxOverlapKeys {
			s.overlaps[subsID] = n
		}
	}
	s.flightMu.Unlock()
}

func (s *stats) leave(subsID string) {
	s.flightMu.Lock()
	if n := s.inFlight[subsID] - 1; n > 0 {
		s.inFlight[subsID] = n
	} else {
		delete(s.inFlight, subsID)
	}
	s.flightMu.Unlock()
}

func (s *stats) init() {
	s.mu.Lock()
	s.m = make(map[statKey]int)
	s.mu.Unlock()
	s.flightMu.Lock()
	if s.inFlight == nil {
		s.inFlight = make(map[string]int)
	}
	s.overlaps = make(map[string]int)
	s.flightMu.Unlock()
	s.total.Store(0)
	s.applied.Store(0)
}

func (s *stats) record(action, code string, applied bool) {
	s.total.Add(1)
	if applied {
		s.applied.Add(1)
	}
	k := statKey{action, code}
	s.mu.Lock()
	if _, ok := s.m[k]; !ok && len(s.m) >= maxStatKeys {
		k = statKey{"(other)", code}
	}
	s.m[k]++
	s.mu.Unlock()
}

func (s *stats) snapshot() Stats {
	out := Stats{Calls: map[string]map[string]int{}}
	s.mu.Lock()
	for k, n := range s.m {
		byCode := out.Calls[k.action]
		if byCode == nil {
			byCode = map[string]int{}
			out.Calls[k.action] = byCode
		}
		byCode[k.code] += n
	}
	s.mu.Unlock()
	s.flightMu.Lock()
	if len(s.overlaps) > 0 {
		out.Overlaps = make(map[string]int, len(s.overlaps))
		for k, n := range s.overlaps {
			out.Overlaps[k] = n
		}
	}
	s.flightMu.Unlock()
	out.Total = int(s.total.Load())
	out.Applied = int(s.applied.Load())
	return out
}
