package dyplsim

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// maxFormBody caps a form-encoded request body.
const maxFormBody = 1 << 20

// apiRequest is the per-call scratch space. It is pooled: a call allocates
// only the strings of parameters that needed unescaping.
type apiRequest struct {
	params []param
	sts    []byte // string to sign
	out    []byte // response body
	body   []byte // request body
}

var apiRequestPool = sync.Pool{New: func() any {
	return &apiRequest{
		params: make([]param, 0, 32),
		sts:    make([]byte, 0, 1024),
		out:    make([]byte, 0, 512),
	}
}}

func getAPIRequest() *apiRequest {
	return apiRequestPool.Get().(*apiRequest)
}

func putAPIRequest(q *apiRequest) {
	if cap(q.sts) > 64<<10 || cap(q.out) > 64<<10 || cap(q.body) > 64<<10 {
		return // do not keep unusually large buffers
	}
	clear(q.params)
	q.params = q.params[:0]
	q.sts = q.sts[:0]
	q.out = q.out[:0]
	q.body = q.body[:0]
	apiRequestPool.Put(q)
}

var errBadQuery = errors.New("malformed query string")

// parse collects the query parameters and, for a form-encoded body, the form
// parameters, then sorts them by key. A key given more than once keeps its
// first value.
func (q *apiRequest) parse(r *http.Request) error {
	if err := q.parseQuery(r.URL.RawQuery); err != nil {
		return err
	}
	if r.Body != nil && r.ContentLength != 0 && (r.Method == http.MethodPost || r.Method == http.MethodPut) {
		// The body is read whatever its type: an ACS3 signature covers its
		// hash.
		b, err := readLimited(q.body[:0], r.Body, maxFormBody)
		q.body = b
		if err != nil {
			return err
		}
		isForm := true
		if ct := r.Header.Get("Content-Type"); ct != "" {
			mt, _, err := mime.ParseMediaType(ct)
			isForm = err == nil && mt == "application/x-www-form-urlencoded"
		}
		if isForm {
			if err := q.parseQuery(string(b)); err != nil {
				return err
			}
		}
	}
	if !slices.IsSortedFunc(q.params, cmpParam) {
		slices.SortStableFunc(q.params, cmpParam)
	}
	// Drop repeated keys, keeping the first value.
	out := q.params[:0]
	for i, p := range q.params {
		if i > 0 && p.k == q.params[i-1].k {
			continue
		}
		out = append(out, p)
	}
	q.params = out
	return nil
}

func readLimited(dst []byte, r io.Reader, limit int) ([]byte, error) {
	lr := io.LimitReader(r, int64(limit)+1)
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := lr.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if len(dst) > limit {
			return dst, errors.New("request body too large")
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

func (q *apiRequest) parseQuery(s string) error {
	for s != "" {
		var kv string
		kv, s, _ = strings.Cut(s, "&")
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		k, ok1 := unescape(k)
		v, ok2 := unescape(v)
		if !ok1 || !ok2 {
			return errBadQuery
		}
		q.params = append(q.params, param{k: k, v: v})
	}
	return nil
}

// get returns the value of key, or "".
func (q *apiRequest) get(key string) string {
	for i := range q.params {
		if q.params[i].k == key {
			return q.params[i].v
		}
	}
	return ""
}

// has reports whether key was sent, even with an empty value.
func (q *apiRequest) has(key string) bool {
	for i := range q.params {
		if q.params[i].k == key {
			return true
		}
	}
	return false
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// unescape decodes a query component like url.QueryUnescape ('+' is a
// space). It returns s itself, without allocating, when nothing needs
// decoding.
func unescape(s string) (string, bool) {
	n := 0
	plus := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '%':
			if i+2 >= len(s) {
				return "", false
			}
			if _, ok := unhex(s[i+1]); !ok {
				return "", false
			}
			if _, ok := unhex(s[i+2]); !ok {
				return "", false
			}
			n++
			i += 2
		case '+':
			plus = true
		}
	}
	if n == 0 && !plus {
		return s, true
	}
	b := make([]byte, 0, len(s)-2*n)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%':
			hi, _ := unhex(s[i+1])
			lo, _ := unhex(s[i+2])
			b = append(b, hi<<4|lo)
			i += 2
		case '+':
			b = append(b, ' ')
		default:
			b = append(b, c)
		}
	}
	return string(b), true
}
