package enqueuecli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"
	xunicode "golang.org/x/text/encoding/unicode"

	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/tasks"
)

// gbk encodes s as GBK, as Excel and WPS save a CSV on a Chinese Windows.
func gbk(t testing.TB, s string) string {
	t.Helper()
	b, err := simplifiedchinese.GBK.NewEncoder().String(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// utf16le encodes s as UTF-16LE with a byte-order mark: Excel's "Unicode
// text".
func utf16le(t testing.TB, s string) string {
	t.Helper()
	b, err := xunicode.UTF16(xunicode.LittleEndian, xunicode.UseBOM).NewEncoder().String(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const chineseRows = "PoolKey,SubsId,PhoneNoX,OperateType,OutId,_note\r\n" +
	"FC1,1000000000000001,17000000000,updateOutId,订单-42,加急\r\n" +
	"FC1,1000000000000002,17000000001,updateOutId,order-43,备注\r\n"

// TestGBKFileRefusedOrDecoded: a GBK file is never queued as damaged text:
// without --encoding it is refused with one line that names GBK; with
// --encoding gbk its Chinese text reaches the payload intact.
func TestGBKFileRefusedOrDecoded(t *testing.T) {
	h := newHarness(t)
	path := h.write("gbk.csv", gbk(t, chineseRows))
	r := h.run(path)
	if r.code != exitFailed || h.pending() != 0 {
		t.Fatalf("a GBK file: want exit 1 and nothing queued\n%s", r)
	}
	mustContain(t, r, "stderr", "gbk.csv:2: not UTF-8: it looks like GBK", "--encoding gb18030")
	if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n != 0 {
		t.Errorf("want one line on stderr, got %d:\n%s", n+1, r)
	}

	// Only the ignored _note column in GBK: refused just the same.
	path = h.write("gbk-note.csv", "PoolKey,SubsId,PhoneNoX,OperateType,OutId,_note\n"+
		"FC1,1000000000000001,17000000000,updateOutId,order-42,"+gbk(t, "加急")+"\n")
	if r := h.run("--dry-run", path); r.code != exitFailed || !strings.Contains(r.stderr, "looks like GBK") {
		t.Errorf("GBK in _note: %s", r)
	}

	for _, enc := range []string{"gbk", "gb18030"} {
		h.queue = h.ns + "-" + enc
		r = h.run("--encoding", enc, h.write(enc+".csv", gbk(t, chineseRows)))
		if r.code != 0 {
			t.Fatalf("--encoding %s: %s", enc, r)
		}
		ts := h.tasksIn()
		if len(ts) != 2 || ts[0].u.OutId != "订单-42" || ts[1].u.OutId != "order-43" {
			t.Fatalf("--encoding %s: %+v", enc, ts)
		}
		h.insp.DeleteQueue(h.queue, true)
	}
}

// TestExcelFiles: the files Excel writes are read: "CSV UTF-8" with a
// quoted header after its BOM, "Unicode text" (UTF-16LE with a BOM, tab
// separated), and old Mac Excel's CR line ends.
func TestExcelFiles(t *testing.T) {
	h := newHarness(t)
	rows := "FC1,1000000000000001,17000000000,updateOutId,订单-42\r\n"
	cases := []struct{ name, file, content, note string }{
		{"bom-quoted-header", "a.csv", "\ufeff\"PoolKey\",\"SubsId\",\"PhoneNoX\",\"OperateType\",\"OutId\"\r\n" + rows, ""},
		{"utf16-unicode-text", "b.txt", utf16le(t, "PoolKey\tSubsId\tPhoneNoX\tOperateType\tOutId\r\n"+strings.ReplaceAll(rows, ",", "\t")), "read as UTF-16"},
		{"utf16-csv", "c.csv", utf16le(t, "PoolKey,SubsId,PhoneNoX,OperateType,OutId\r\n"+rows), "read as UTF-16"},
		{"cr-only", "d.csv", strings.ReplaceAll("PoolKey,SubsId,PhoneNoX,OperateType,OutId\r\n"+rows, "\r\n", "\r"), "lines end in CR alone"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.queue = h.ns + "-" + c.name
			defer h.insp.DeleteQueue(h.queue, true)
			r := h.run(h.write(c.file, c.content))
			if r.code != 0 {
				t.Fatalf("%s", r)
			}
			if c.note != "" {
				mustContain(t, r, "stderr", c.note)
			}
			ts := h.tasksIn()
			if len(ts) != 1 || ts[0].u.OutId != "订单-42" || ts[0].u.PoolKey != "FC1" || ts[0].u.Meta.Line != 2 {
				t.Fatalf("tasks %+v\n%s", ts, r)
			}
		})
	}
}

// TestSpreadsheetNumberHints: numbers a spreadsheet mangled are refused
// with a hint that says what happened; ids written as JSON numbers get a
// warning.
func TestSpreadsheetNumberHints(t *testing.T) {
	h := newHarness(t)
	csv := "PoolKey,SubsId,PhoneNoX,OperateType,PhoneNoA\n" +
		"FC1,1000000000000001,17000000000,updateNoA,1.38001E+10\n" +
		"FC1,1000000000000002,17000000000,updateNoA,'13800138000\n" +
		"FC1,1000000000000003,17000000000,updateNoA,\"=\"\"0101234567\"\"\"\n" +
		"FC1,1000000000000004,17000000000,updateNoA,13612345612.0\n" +
		"FC1,1000000000000005,17000000000,updateNoA,1012345678\n" +
		"FC1,1.00000000000001E+15,17000000000,updateNoA,13800138000\n"
	r := h.run("--dry-run", h.write("x.csv", csv))
	if r.code != exitFailed {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stderr",
		"x.csv:2: PhoneNoA: must be digits only", "scientific notation", "format the column as Text",
		"x.csv:3: PhoneNoA:", "drop the leading '",
		"x.csv:4: PhoneNoA:", `the ="..." form is an Excel formula`,
		"x.csv:5: PhoneNoA:", "ends in .0",
		"x.csv:6: PhoneNoA:", "dropped its leading 0",
		"x.csv:7: SubsId:", "scientific notation")
	for _, full := range []string{"13800138000", "0101234567", "13612345612", "1012345678"} {
		if strings.Contains(r.stderr, full) {
			t.Errorf("stderr shows %s in full", full)
		}
	}

	jsonl := `{"PoolKey":"FC1","SubsId":1000000000000001,"PhoneNoX":"17000000000","OperateType":"updateNoA","PhoneNoA":13800138000}` + "\n" +
		`{"PoolKey":"FC1","SubsId":"1000000000000002","PhoneNoX":"17000000000","OperateType":"updateNoA","PhoneNoA":1.38001e+10}` + "\n"
	r = h.run("--dry-run", h.write("x.jsonl", jsonl))
	mustContain(t, r, "stderr",
		"x.jsonl:1: warning: PhoneNoA: written as a JSON number: write numbers and ids as strings (\"1000000768790001\")",
		"x.jsonl:1: warning: SubsId: written as a JSON number",
		"x.jsonl:2: PhoneNoA: must be digits only", "scientific notation")
	if strings.Contains(r.stderr, "13800138000") {
		t.Errorf("stderr shows a number in full:\n%s", r)
	}
}

// TestWarnings: fields the OperateType does not use are warned about and
// left out of the job; an Expiration less than ten minutes ahead is queued
// with a warning; the report says both.
func TestWarnings(t *testing.T) {
	h := newHarness(t)
	soon := nowBeijing(5 * 60)
	csv := "PoolKey,SubsId,PhoneNoX,OperateType,PhoneNoA,Expiration\n" +
		"FC1,1000000000000001,17000000000,updateNoA,13800138000,2020-01-01 00:00:00\n" +
		"FC1,1000000000000002,17000000000,updateExpire,,\"" + soon + "\"\n"
	report := h.dir + "/report.csv"
	r := h.run("--report", report, h.write("w.csv", csv))
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	mustContain(t, r, "stderr", "w.csv:2: warning: Expiration: not used by OperateType updateNoA: left out of the API call",
		"w.csv:3: warning: Expiration: only ", "isv.EXPIRE_DATE_ILLEGAL")
	mustContain(t, r, "stdout", "2 rows have warnings")
	ts := h.tasksIn()
	if len(ts) != 2 || ts[0].u.Expiration != "" || ts[0].u.PhoneNoA != "13800138000" || ts[1].u.Expiration != soon {
		t.Fatalf("tasks %+v", ts)
	}
	b, _ := os.ReadFile(report)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[1], "Expiration: not used by OperateType updateNoA: left out of the API call (which ignores it)") ||
		!strings.Contains(lines[2], "Expiration: only ") {
		t.Errorf("report:\n%s", b)
	}
}

// nowBeijing is the time secs seconds from now, as an Expiration.
func nowBeijing(secs int) string {
	return time.Now().Add(time.Duration(secs) * time.Second).In(tasks.Beijing).Format(tasks.ExpirationLayout)
}

// TestMaskedNumbersWithSeparators: a number written with separators in a
// wrong column or as a header never prints in full.
func TestMaskedNumbersWithSeparators(t *testing.T) {
	h := newHarness(t)
	r := h.run("--dry-run", h.write("s.csv", "PoolKey,SubsId,PhoneNoX,OperateType,+86 138-0013-8000\nFC1,1000000000000001,17000000000,updateNoA,x\n"))
	mustContain(t, r, "stderr", `unknown column "+86 138-****-8000"`)
	r = h.run("--dry-run", h.write("s2.csv", "PoolKey,SubsId,PhoneNoX,OperateType,PhoneNoA\nFC1,1000000000000001,17000000000,+86 138-0013-8000,x\n"))
	mustContain(t, r, "stderr", `got "+86 138-****-8000"`)
	if strings.Contains(r.stderr, "0013") {
		t.Errorf("stderr shows the number:\n%s", r)
	}
}

// TestTaskIDsShowWhole: every row's task id shows whole in asynqmon, which
// cuts an id at its first "-"; a batch begun by a version that made
// "<batch>-<line>" ids goes on with them.
func TestTaskIDsShowWhole(t *testing.T) {
	h := newHarness(t)
	path := h.write("ids.csv", csvRows(3))
	r := h.run(path)
	if r.code != 0 {
		t.Fatalf("%s", r)
	}
	seen := map[string]bool{}
	for _, q := range h.tasksIn() {
		shown, _, _ := strings.Cut(q.id, "-") // what asynqmon shows
		if shown != q.id || seen[shown] {
			t.Errorf("task id %s shows as %s in asynqmon", q.id, shown)
		}
		seen[shown] = true
	}

	// A batch record of before, and the same file run again after an
	// interruption: the rows keep the old form, and nothing is queued twice.
	h.queue = h.ns + "-legacy"
	path = h.write("legacy.csv", csvRows(2))
	r = h.run("--dry-run", path)
	id := batchID(t, r)
	info, _, err := h.store.Begin(context.Background(), batch.Info{ID: id, File: path, Format: "csv", Queue: h.queue, Lines: 3, Rows: 2, ValidRows: 2})
	if err != nil {
		t.Fatal(err)
	}
	h.rdb.HDel(context.Background(), h.store.Key(info.ID), "task_ids")
	for range 2 {
		if r := h.run(path); r.code != 0 {
			t.Fatalf("%s", r)
		}
	}
	ts := h.tasksIn()
	if len(ts) != 2 || ts[0].id != batch.LegacyTaskID(id, 2) || ts[1].id != batch.LegacyTaskID(id, 3) {
		t.Errorf("legacy batch tasks: %+v", ts)
	}
}

// shownDigits returns s with full-width digits made ASCII and every
// character that may separate the groups of a number dropped, so that a
// number shown in any of its written forms reads as one run of digits.
func shownDigits(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= '０' && r <= '９':
			return r - '０' + '0'
		case strings.ContainsRune(" -./()\u3000\u00a0\u2013\u2014\"", r):
			return -1
		}
		return r
	}, strings.NewReplacer(`\u3000`, "", `\u00a0`, "", `\u2013`, "", `\u2014`, "").Replace(s))
}

// TestMaskedWideNumbers: numbers written with full-width digits, Unicode
// spaces and dashes, slashes, spaced dashes or one dot never print in
// full: not as an unknown column or JSON key, not as a "got" value, not in
// the report's value column.
func TestMaskedWideNumbers(t *testing.T) {
	h := newHarness(t)
	forms := []string{"１３８００１３８０００", "138\u00a00013\u00a08000", "138\u30000013\u30008000",
		"138\u20130013\u20138000", "138\u20140013\u20148000", "138/0013/8000", "138 - 0013 - 8000", "138.00138000"}
	check := func(what string, r result) {
		t.Helper()
		if out := shownDigits(r.stdout + r.stderr); strings.Contains(out, "13800138000") {
			t.Errorf("%s: the number shows in full:\n%s", what, r)
		}
	}
	for i, n := range forms {
		r := h.run("--dry-run", h.write(fmt.Sprintf("h%d.csv", i), "PoolKey,SubsId,PhoneNoX,OperateType,"+n+"\nFC1,1000000000000001,17000000000,updateNoA,x\n"))
		mustContain(t, r, "stderr", "unknown column")
		check("unknown column "+n, r)
		r = h.run("--dry-run", h.write(fmt.Sprintf("v%d.csv", i), "PoolKey,SubsId,PhoneNoX,OperateType\nFC1,1000000000000001,17000000000,\""+n+"\"\n"))
		mustContain(t, r, "stderr", "got ")
		check("got "+n, r)
		key, _ := json.Marshal(n)
		r = h.run("--dry-run", h.write(fmt.Sprintf("k%d.jsonl", i), `{"PoolKey":"FC1","SubsId":"1000000000000001","PhoneNoX":"17000000000","OperateType":"updateNoA",`+string(key)+`:"x"}`+"\n"))
		mustContain(t, r, "stderr", "unknown key")
		check("unknown key "+n, r)
		report := h.dir + fmt.Sprintf("/r%d.csv", i)
		r = h.run("--report", report, h.write(fmt.Sprintf("o%d.csv", i), "PoolKey,SubsId,PhoneNoX,OperateType,OutId\nFC1,1000000000000001,17000000000,updateOutId,\""+n+"\"\n"))
		if r.code != 0 {
			t.Fatalf("OutId %s: %s", n, r)
		}
		b, _ := os.ReadFile(report)
		if strings.Contains(shownDigits(string(b)), "13800138000") {
			t.Errorf("report shows OutId %q in full:\n%s", n, b)
		}
	}
	// Ids, dates and decimals stay whole.
	r := h.run("--dry-run", h.write("ok.csv", "PoolKey,SubsId,PhoneNoX,OperateType,2026-12-01 10:00:00\nFC1,1000000000000001,17000000000,updateNoA,x\n"))
	mustContain(t, r, "stderr", `unknown column "2026-12-01 10:00:00"`)
}
