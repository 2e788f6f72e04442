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

// FuzzDecodeOnePass checks the one-pass decoder of the common payload
// against the general one: wherever it takes a payload, the general
// decoder takes it too and gives the same update.
func FuzzDecodeOnePass(f *testing.F) {
	for _, s := range []string{
		`{"PoolKey":"FC1","SubsId":"1000000000000001","PhoneNoX":"17000000000","OperateType":"updateOutId","OutId":"o-1","_meta":{"schema":1,"version":7,"enqueued_at":"2026-01-02T03:04:05.678Z","batch":"b1","line":3}}`,
		` { "subsid" : "1" , "PHONENOX":"17000000000", "OperateType":"updateOutId", "_x": "y", "_Meta": {"schema":1, "source":"a\"}b"} } `,
		`{"SubsId":"1","PhoneNoX":"17000000000","OperateType":"updateOutId","OutId":"订单"}`,
		`{"SubsId":"1","OutId":"a\u0041"}`, `{"SubsId":"1","subsid":"2"}`, `{"_meta":null}`, `{"_meta":{"schema":"1"}}`,
		`{"SubsId":"1"} x`, `{"SubsId":"1"}{}`, `{}`, `{"OutId":"` + "\xff" + `"}`, `{"OutId":"a` + "\n" + `"}`,
		`{"_meta":{"schema":1,"x":[1,{"y":"}"}]}}`, `{"_meta":{}}}`, `{"SubsId":"1",}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		fast, ok := decodeOnePass(payload)
		if !ok {
			return
		}
		var slow Update
		if err := slow.decodeTokens(payload); err != nil {
			t.Fatalf("one pass took %q, the general decoder refuses it: %v", payload, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q:\none pass %+v (meta %+v)\ngeneral  %+v (meta %+v)", payload, fast, fast.Meta, slow, slow.Meta)
		}
	})
}
