package enqueuecli

import (
	"bytes"
	"encoding/csv"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/deadletter"
	"github.com/dyplsq/dyplsq/mask"
	"github.com/dyplsq/dyplsq/tasks"
)

// FuzzExportRoundTrip exports a dead letter holding an arbitrary payload,
// as `enqueue dlq export` writes it, and reads the file back as `enqueue
// FILE` does. A payload the worker can decode comes back as the same job
// (its idempotency key left out, its dead task named, bytes that are not
// UTF-8 as U+FFFD); the message column
// shows no phone number; nothing panics.
func FuzzExportRoundTrip(f *testing.F) {
	for _, s := range []string{
		`{"PoolKey":"FC1","SubsId":"1000000000000001","PhoneNoX":"17000000000","OperateType":"updateNoA","PhoneNoA":"13800138000","_meta":{"version":7}}`,
		`{"PoolKey":"FC1","SubsId":1000000000000001,"PhoneNoX":"17000000000","OperateType":"updateOutId","OutId":"a,\"b\"\n'c","IdempotencyKey":"k1"}`,
		`{"SubsId":"1","PhoneNoX":"17000000000","OperateType":"updateRingConfig","RingConfig":{"AOnly":"=1+2"}}`,
		`{"SubsId":"1","PhoneNoX":"17000000000","OperateType":"updateNoA","PhoneNoA":" 138 0013 8000 "}`,
		`{"SubsId":"1"`, `not json 13800138000`,
	} {
		f.Add([]byte(s), "failed for 13800138000")
	}
	f.Fuzz(func(t *testing.T, payload []byte, msg string) {
		want, decodeErr := tasks.Decode(payload)
		r := deadletter.Record{TaskID: "dead-1", Queue: "q", Code: "isv.X", Message: msg}
		r.SetPayload(payload)
		row, _ := exportRow(r, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Format(time.RFC3339Nano))
		if m := row[len(tasks.KnownColumns)+1]; mask.Text(m) != m {
			t.Fatalf("message column holds a phone number: %q", m)
		}
		var file bytes.Buffer
		cw := csv.NewWriter(&file)
		_ = cw.Write(append(append([]string(nil), tasks.KnownColumns...), exportExtra...))
		_ = cw.Write(row)
		cw.Flush()
		rr, err := newRowReader(bytes.NewReader(file.Bytes()), "export.csv", formatCSV, encUTF8)
		if err != nil {
			t.Fatalf("read the export back: %v\n%s", err, file.Bytes())
		}
		got, err := rr.next()
		if err != nil || got.err != nil {
			t.Fatalf("read the export row back: %v %v\n%s", err, got.err, file.Bytes())
		}
		if _, err := rr.next(); err != io.EOF {
			t.Fatalf("export of one dead letter read back as more than one row: %v", err)
		}
		if got.deadTask != r.TaskID {
			t.Fatalf("row names dead task %q, want %q", got.deadTask, r.TaskID)
		}
		if decodeErr != nil {
			return
		}
		got.u.Normalize()
		for _, c := range tasks.KnownColumns {
			w := *tasks.FieldValue(&want, c)
			if c == "IdempotencyKey" {
				w = ""
			}
			// Bytes that are not UTF-8 (a job someone else queued) are
			// written as U+FFFD: enqueue reads UTF-8 only, and the
			// validator refuses the row with the reason.
			w = strings.ToValidUTF8(w, "\uFFFD")
			if g := *tasks.FieldValue(&got.u, c); g != w {
				t.Fatalf("%s came back as %q, was %q\n%s", c, g, w, file.Bytes())
			}
		}
	})
}
