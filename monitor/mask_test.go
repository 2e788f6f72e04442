package monitor

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func TestMaskJSON(t *testing.T) {
	in := `{"id":"0123456789ab-not-a-uuid","tid":"6ba7b810-9dad-11d1-80b4-013812345678",` +
		`"idem":"idem-0123456789abcdef0123456789abcdef","error_message":"x 13912345678: skip",` +
		`"memory_usage_bytes":1073741824,"payload":"{\n  \"PhoneNoA\": \"13812345678\"\n}",` +
		`"13712345678":true,"html":"<a & b>","subs":"1000000000000001"}`
	out := string(maskJSON([]byte(in), true))
	if !json.Valid([]byte(out)) {
		t.Fatalf("masked JSON is not valid: %s", out)
	}
	for _, bad := range []string{"13912345678", "13812345678\\", "13712345678", `"0123456789ab-`} {
		if strings.Contains(out, bad) {
			t.Errorf("masked JSON still holds %q: %s", bad, out)
		}
	}
	for _, keep := range []string{
		`"tid":"6ba7b810-9dad-11d1-80b4-013812345678"`,
		`"idem":"idem-0123456789abcdef0123456789abcdef"`,
		`"memory_usage_bytes":1073741824`,
		`"subs":"1000000000000001"`,
		`x 139****5678: skip`,
		`\"PhoneNoA\": \"138****5678\"`,
	} {
		if !strings.Contains(out, keep) {
			t.Errorf("masked JSON lacks %s: %s", keep, out)
		}
	}
	if got := maskJSON([]byte(`{"a":"b","n":[1,2]}`), true); string(got) != `{"a":"b","n":[1,2]}` {
		t.Errorf("unchanged document was rewritten: %s", got)
	}
}

func TestMaskAPI(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		status  int
		want    string
		ctype   string
	}{
		{"json", func(w http.ResponseWriter, r *http.Request) {
			json.NewEncoder(w).Encode(map[string]string{"error_message": "bad 13812345678"})
		}, 200, `{"error_message":"bad 138****5678"}` + "\n", "application/json"},
		{"text error", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no task for 13812345678", http.StatusNotFound)
		}, 404, "no task for 138****5678\n", "text/plain; charset=utf-8"},
		{"no content", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		}, 204, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			maskAPI(tc.handler).ServeHTTP(rec, httptest.NewRequest("GET", "/monitoring/api/x", nil))
			if rec.Code != tc.status || rec.Body.String() != tc.want {
				t.Fatalf("got %d %q, want %d %q", rec.Code, rec.Body.String(), tc.status, tc.want)
			}
			if got := rec.Header().Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type = %q, want %q", got, tc.ctype)
			}
			if tc.status != http.StatusNoContent {
				if got, want := rec.Header().Get("Content-Length"), strconv.Itoa(len(tc.want)); got != want {
					t.Errorf("Content-Length = %s, want %s", got, want)
				}
			}
		})
	}
}

func TestMaskAPIFixesContentLength(t *testing.T) {
	body := `"13812345678 13912345678"`
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write([]byte(body))
	})
	srv := httptest.NewServer(maskAPI(h))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got string
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got != "138****5678 139****5678" || resp.ContentLength != int64(len(`"138****5678 139****5678"`)) {
		t.Errorf("got %q with Content-Length %d", got, resp.ContentLength)
	}
}
