package deadletter

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/mask"
)

// FuzzRecord stores arbitrary payloads (as a hostile queue may hold) and
// messages in a record. Encoding and decoding the record keeps the payload
// byte for byte and every field; what people read of it (String,
// MaskedPayload) shows no phone number; nothing panics.
func FuzzRecord(f *testing.F) {
	for _, s := range []string{
		`{"SubsId":"1000000000000001","PhoneNoX":"17000000000","OperateType":"updateNoA","PhoneNoA":"13800138000","_meta":{"version":7,"batch":"b1","line":3}}`,
		`{"subsid":1,"OperateType":"updateNoA","_META":{"version":"9","line":2.5}}`,
		`{ "SubsId" : "1" }`, `{"SubsId":"1"`, "\xff\xfe13800138000", `"+86 138-0013-8000"`, ``,
	} {
		f.Add([]byte(s), "transient failure for 13800138000", "isv.BIND_CONFLICT")
	}
	f.Fuzz(func(t *testing.T, payload []byte, msg, code string) {
		died := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
		r := Record{TaskID: "t1", Queue: "q", Type: "dypls:update_subscription", Code: code, Message: msg,
			Attempts: 2, FirstFailure: died.Add(-time.Minute), LastFailure: died, DiedAt: died}
		r.SetPayload(payload)
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		var back Record
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		if !bytes.Equal(back.Payload, r.Payload) {
			t.Fatalf("payload %q came back as %q", r.Payload, back.Payload)
		}
		// Text fields are text: invalid UTF-8 in a message comes back as
		// U+FFFD. From then on the record is stable.
		b2, err := json.Marshal(back)
		if err != nil {
			t.Fatal(err)
		}
		var again Record
		if err := json.Unmarshal(b2, &again); err != nil || !reflect.DeepEqual(back, again) {
			t.Fatalf("record changed in a second round trip:\n%+v\n%+v (%v)", back, again, err)
		}
		if back.TaskID != r.TaskID || back.Version != r.Version || back.SubsId != r.SubsId ||
			back.Line != r.Line || !back.DiedAt.Equal(r.DiedAt) {
			t.Fatalf("fields changed in a round trip:\n%+v\n%+v", r, back)
		}
		for _, s := range []string{r.String(), r.MaskedPayload()} {
			if mask.Text(s) != s {
				t.Fatalf("shown text holds a phone number: %q", s)
			}
		}
	})
}
