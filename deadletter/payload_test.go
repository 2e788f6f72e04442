package deadletter

import (
	"encoding/json"
	"testing"
	"time"
)

func TestRequeuePayload(t *testing.T) {
	now := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	cases := []struct{ in, want string }{
		{
			`{"SubsId":"1","PhoneNoA":"13812345678", "_meta" : {"schema":1,"version":9,"source":"cli"} ,"OutId":"x"}`,
			`{"SubsId":"1","PhoneNoA":"13812345678", "_meta" : {"requeued_at":"2030-05-06T07:08:09Z","requeued_from":"T","requeues":1,"schema":1,"source":"requeue","version":9} ,"OutId":"x"}`,
		},
		{
			`{"_meta":{"version":3,"requeues":2},"SubsId":"1"}`,
			`{"_meta":{"requeued_at":"2030-05-06T07:08:09Z","requeued_from":"T","requeues":3,"source":"requeue","version":3},"SubsId":"1"}`,
		},
		{
			`{"SubsId":"1"}`,
			`{"SubsId":"1","_meta":{"requeued_at":"2030-05-06T07:08:09Z","requeued_from":"T","requeues":1,"source":"requeue"}}`,
		},
		{
			`{ }`,
			`{ "_meta":{"requeued_at":"2030-05-06T07:08:09Z","requeued_from":"T","requeues":1,"source":"requeue"}}`,
		},
		{
			`{"SubsId":"1","_meta":null}`,
			`{"SubsId":"1","_meta":{"requeued_at":"2030-05-06T07:08:09Z","requeued_from":"T","requeues":1,"source":"requeue"}}`,
		},
	}
	for _, c := range cases {
		got, err := requeuePayload([]byte(c.in), Record{TaskID: "T"}, now)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.in, got, c.want)
		}
		if !json.Valid(got) {
			t.Errorf("%s: result is not JSON", c.in)
		}
	}
	for _, bad := range []string{``, `[1]`, `"x"`, `{"a":`, `{"_meta":[1]}`, `{"_meta":{},"_META":{}}`} {
		if _, err := requeuePayload([]byte(bad), Record{TaskID: "T"}, now); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestDecodeFields(t *testing.T) {
	f := decodeFields([]byte(`{"subsid":123,"OperateType":"updateNoA","_meta":{"version":"7","batch":"b","line":3.0}}`))
	if f.SubsId != "123" || f.OperateType != "updateNoA" || f.Version != 7 || f.Batch != "b" {
		t.Errorf("decodeFields = %+v", f)
	}
	if f := decodeFields([]byte(`garbage`)); f != (jobFields{}) {
		t.Errorf("decodeFields(garbage) = %+v", f)
	}
}
