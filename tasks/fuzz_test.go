package tasks

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/dyplsq/dyplsq/mask"
)

// FuzzDecode feeds arbitrary payloads to [Decode], as a worker receives
// them from a queue anyone can write to. It never panics; an error wraps
// ErrMalformed and shows no phone number; a payload it accepts, encoded
// again, decodes to the same update (the round trip a requeue makes).
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"PoolKey":"FC1","SubsId":"1000000000000001","PhoneNoX":"17000000000","OperateType":"updateNoA","PhoneNoA":"13800138000"}`,
		`{"PoolKey":"FC1","SubsId":1000000000000001,"PhoneNoX":17000000000,"OperateType":"updateNoA","PhoneNoA":1.38001e+10,"_meta":{"schema":1,"version":7}}`,
		`{"SubsId":"1","PhoneNoX":"17000000000","OperateType":"updateOutId","OutId":"订单","_meta":{"schema":99}}`,
		`{"SubsId":"1","PhoneNoX":"17000000000","OperateType":"updateRingConfig","RingConfig":{"AOnly":"x"}}`,
		`{"SubsId":"1","PhoneNoX":"170\u00000000000","OperateType":"updateNoA","13800138000":1}`,
		`{"SubsId":"1","SubsId":"2"}`,
		`{"SubsId":"1","PhoneNoX":"17000000000","OperateType":"updateNoA","_meta":{"version":-1}}`,
		`{"SubsId":"1",`, `[]`, `"13800138000"`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		u, err := Decode(payload)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode error does not wrap ErrMalformed: %v", err)
			}
			if msg := err.Error(); mask.Text(msg) != msg {
				t.Fatalf("Decode error shows a phone number: %q", msg)
			}
			return
		}
		again, err := json.Marshal(u)
		if err != nil {
			t.Fatalf("encode a decoded update: %v", err)
		}
		v, err := Decode(again)
		if err != nil {
			t.Fatalf("Decode(%q) re-encoded as %q: %v", payload, again, err)
		}
		if !reflect.DeepEqual(u, v) {
			t.Fatalf("round trip changed the update:\n%+v\n%+v", u, v)
		}
	})
}
