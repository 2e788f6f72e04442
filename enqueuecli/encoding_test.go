package enqueuecli

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/simplifiedchinese"
	xunicode "golang.org/x/text/encoding/unicode"

	"github.com/dyplsq/dyplsq/batch"
)

// encodeAs encodes s with enc, failing the test if it cannot.
func encodeAs(t testing.TB, enc encoding.Encoding, s string) string {
	t.Helper()
	b, err := enc.NewEncoder().String(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// oneLine fails the test unless r's stderr is one line.
func oneLine(t *testing.T, what string, r result) {
	t.Helper()
	if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n != 0 {
		t.Errorf("%s: want one line on stderr, got %d:\n%s", what, n+1, r)
	}
}

// TestUTF8ReadAsGBKRefused: a UTF-8 file, with or without a BOM, given
// --encoding gbk or gb18030 is refused in one line instead of being read as
// garbled text.
func TestUTF8ReadAsGBKRefused(t *testing.T) {
	h := newHarness(t)
	for _, bom := range []string{"", "\ufeff"} {
		path := h.write("u.csv", bom+chineseRows)
		for _, enc := range []string{"gbk", "gb18030", "GB2312"} {
			r := h.run("--encoding", enc, path)
			if r.code == 0 || h.pending() != 0 {
				t.Fatalf("UTF-8 (bom %q) read as %s: want a refusal and nothing queued\n%s", bom, enc, r)
			}
			mustContain(t, r, "stderr", "already UTF-8", "drop --encoding")
			oneLine(t, enc, r)
		}
	}
	// An ASCII file is the same in every encoding: read.
	if r := h.run("--dry-run", "--encoding", "gbk", h.write("a.csv", csvRows(2))); r.code != 0 {
		t.Errorf("ASCII read as gbk: %s", r)
	}
}

// TestGB18030Advice: a GB18030 file with four-byte characters is refused
// with advice that, followed, reads it intact; --encoding gbk reads it
// intact too.
func TestGB18030Advice(t *testing.T) {
	h := newHarness(t)
	const outID = "订单㐀𠀀€-42"
	path := h.write("g.csv", encodeAs(t, simplifiedchinese.GB18030, "PoolKey,SubsId,PhoneNoX,OperateType,OutId\r\n"+
		"FC1,1000000000000001,17000000000,updateOutId,"+outID+"\r\n"))
	r := h.run(path)
	if r.code == 0 || h.pending() != 0 {
		t.Fatalf("GB18030 without --encoding: %s", r)
	}
	oneLine(t, "refusal", r)
	m := regexp.MustCompile(`--encoding ([a-z0-9-]+)`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no --encoding advice:\n%s", r)
	}
	for _, enc := range []string{m[1], "gbk"} {
		h.queue = h.ns + "-" + enc
		r = h.run("--encoding", enc, path)
		if r.code != 0 {
			t.Fatalf("--encoding %s: %s", enc, r)
		}
		if ts := h.tasksIn(); len(ts) != 1 || ts[0].u.OutId != outID {
			t.Errorf("--encoding %s: %+v", enc, ts)
		}
		h.insp.DeleteQueue(h.queue, true)
	}
}

// TestUTF16WithoutBOM: UTF-16 without a byte-order mark is read whatever
// its characters (一 U+4E00 and 退 U+9000 have a zero byte, and much
// Chinese text has few ASCII characters); a header with NUL bytes the
// sniffing missed is refused in one line that says what to pass.
func TestUTF16WithoutBOM(t *testing.T) {
	h := newHarness(t)
	note := strings.Repeat("订单备注", 8) + "一退"
	text := "PoolKey,SubsId,PhoneNoX,OperateType,OutId,_note\r\n" +
		"FC1,1000000000000001,17000000000,updateOutId,一退-42," + note + "\r\n"
	for name, e := range map[string]encoding.Encoding{
		"le": xunicode.UTF16(xunicode.LittleEndian, xunicode.IgnoreBOM),
		"be": xunicode.UTF16(xunicode.BigEndian, xunicode.IgnoreBOM),
	} {
		h.queue = h.ns + "-" + name
		r := h.run(h.write(name+".csv", encodeAs(t, e, text)))
		if r.code != 0 {
			t.Fatalf("%s: %s", name, r)
		}
		mustContain(t, r, "stderr", "no byte-order mark")
		if ts := h.tasksIn(); len(ts) != 1 || ts[0].u.OutId != "一退-42" {
			t.Errorf("%s: %+v", name, ts)
		}
	}
	// Mostly Chinese: too few zero bytes to tell; the header says it.
	long := "PoolKey,SubsId,PhoneNoX,OperateType,OutId,_note\r\n" +
		"FC1,1000000000000001,17000000000,updateOutId,x," + strings.Repeat("订单备注", 20000) + "\r\n"
	r := h.run("--dry-run", h.write("long.csv", encodeAs(t, xunicode.UTF16(xunicode.LittleEndian, xunicode.IgnoreBOM), long)))
	if r.code == 0 {
		t.Fatalf("mostly Chinese UTF-16: %s", r)
	}
	mustContain(t, r, "stderr", "looks like UTF-16 without a byte-order mark: pass --encoding utf-16 (or utf-16be)")
	oneLine(t, "NUL header", r)
}

// TestBatchIDSameWithOrWithoutEncoding: the same file read the same way
// has the same batch id whether the encoding was given or found.
func TestBatchIDSameWithOrWithoutEncoding(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct{ name, content, enc string }{
		{"bom.csv", utf16le(t, chineseRows), "utf-16"},
		{"nobom.csv", encodeAs(t, xunicode.UTF16(xunicode.LittleEndian, xunicode.IgnoreBOM), chineseRows), "utf-16le"},
		{"u8.csv", chineseRows, "utf-8"},
	} {
		path := h.write(c.name, c.content)
		a, b := h.run("--dry-run", path), h.run("--dry-run", "--encoding", c.enc, path)
		if a.code != 0 || b.code != 0 {
			t.Fatalf("%s: %s\n%s", c.name, a, b)
		}
		if ia, ib := batchID(t, a), batchID(t, b); ia != ib {
			t.Errorf("%s: batch %s without --encoding, %s with --encoding %s", c.name, ia, ib, c.enc)
		}
	}
}

// TestLegacyBatchIDResumed: a batch begun by an earlier version, which left
// a found encoding out of the id, is resumed under its id.
func TestLegacyBatchIDResumed(t *testing.T) {
	h := newHarness(t)
	content := utf16le(t, chineseRows)
	path := h.write("bom.csv", content)
	lh := batch.NewQueueHasher(formatCSV, h.queue)
	lh.Write([]byte(content))
	old := lh.ID()
	if _, _, err := h.store.Begin(context.Background(), batch.Info{ID: old, File: path, Format: formatCSV, Queue: h.queue,
		Lines: 3, Rows: 2, ValidRows: 2}); err != nil {
		t.Fatal(err)
	}
	r := h.run(path)
	if r.code != 0 {
		t.Fatal(r)
	}
	mustContain(t, r, "stderr", "resuming batch "+old)
	if r := h.run("--dry-run", path); batchID(t, r) == old {
		t.Errorf("the new id is the legacy one: the test proves nothing")
	}
}
