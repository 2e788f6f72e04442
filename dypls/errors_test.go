package dypls

import "testing"

func TestErrorText(t *testing.T) {
	e := newError("UpdateSubscription", "isv.BIND_CONFLICT", "A 13812345678 already bound with X 17000000000", "RID-1", 200, false)
	want := "dypls: UpdateSubscription: isv.BIND_CONFLICT: A 138****5678 already bound with X 170****0000 (RequestId RID-1, HTTP 200, permanent)"
	if e.Error() != want {
		t.Fatalf("got  %s\nwant %s", e.Error(), want)
	}
	long := newError("X", "SignatureDoesNotMatch", string(make([]byte, 5000)), "", 400, false)
	if len(long.Message) > maxMessage+10 {
		t.Fatalf("message not bounded: %d bytes", len(long.Message))
	}
	if long.Class != Systemic {
		t.Fatalf("class %v", long.Class)
	}
}
