package monitor

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/dyplsq/dyplsq/mask"
)

// FuzzMaskJSON masks arbitrary JSON documents as the UI's API answers are
// masked. The result is valid JSON, and no string in it (keys included,
// whatever escapes the input used) holds a phone number, except the
// generated ids the UI needs whole.
func FuzzMaskJSON(f *testing.F) {
	for _, s := range []string{
		`{"payload":"{\"PhoneNoA\":\"13800138000\"}","id":"0f0e13800138000a-1111-2222-3333-444455556666"}`,
		`["\u0031\u0033\u0038\u0030\u0030\u0031\u0033\u0038\u0030\u0030\u0030", "+86 138-0013-8000"]`,
		`{"13800138000":13800138000,"a\\":"b\"13800138000"}`,
		`"idem-0123456789abcdef0123456789abcdef"`, `{"x":"１３８００１３８０００"}`, `null`,
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, doc []byte, keepIDs bool) {
		if !json.Valid(doc) {
			return // the UI's API answers JSON; anything else is not masked this way
		}
		out := maskJSON(doc, keepIDs)
		if !json.Valid(out) {
			t.Fatalf("maskJSON(%q) = %q: not JSON", doc, out)
		}
		dec := json.NewDecoder(bytes.NewReader(out))
		for {
			tok, err := dec.Token()
			if err != nil {
				return
			}
			s, ok := tok.(string)
			if !ok || (keepIDs && generatedID.MatchString(s)) {
				continue
			}
			if mask.Text(s) != s {
				t.Fatalf("maskJSON(%q) left a phone number in %q", doc, s)
			}
		}
	})
}
