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
}

func (s *stats) init() {
	s.mu.Lock()
	s.m = make(map[statKey]int)
	s.mu.Unlock()
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
	out.Total = int(s.total.Load())
	out.Applied = int(s.applied.Load())
	return out
}
