package enqueuecli

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/dyplsq/dyplsq/mask"
	"github.com/dyplsq/dyplsq/tasks"
)

// FuzzReadFile feeds random bytes, in random encodings and with the quirks
// of spreadsheet exports, to the file reader and the validation of its
// rows: nothing panics, no payload holds text that is not UTF-8 (or a
// U+FFFD), and no message holds a phone number that masking would hide.
func FuzzReadFile(f *testing.F) {
	const header = "PoolKey,SubsId,PhoneNoX,OperateType,PhoneNoA,OutId,_note\n"
	for _, s := range []string{
		header + "FC1,1000000000000001,17000000000,updateNoA,13800138000,,\n",
		header + "FC1,1000000000000001,17000000000,updateOutId,,订单,+86 138-0013-8000\n",
		header + "FC1,1.00000000000001E+15,17000000000,updateNoA,'13800138000,,\n",
		"\"PoolKey\",\"SubsId\"\r\n\"FC1\",\"1\"\r\n",
		`{"PoolKey":"FC1","SubsId":1000000000000001,"PhoneNoX":"17000000000","OperateType":"updateNoA","PhoneNoA":1.38001e+10}` + "\n",
		"PoolKey\tSubsId\tPhoneNoX\tOperateType\tOutId\r138 0013 8000\t1\t2\t3\t4\r",
	} {
		for quirk := range byte(8) {
			f.Add([]byte(s), quirk)
		}
	}
	f.Add([]byte{0xFF, 0xFE, 'P', 0, ',', 0, '\n', 0}, byte(0))
	f.Add([]byte("\xb6\xa9\xb5\xa5,\xff\xfe\n1,2\n"), byte(3))
	f.Fuzz(func(t *testing.T, data []byte, quirk byte) {
		// The quirk picks the format, an --encoding, and a change to the
		// bytes: a BOM, GBK, CR line ends.
		format := formatCSV
		if quirk&1 == 1 || bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
			format = formatJSONL
		}
		switch quirk >> 1 & 3 {
		case 1:
			data = append([]byte("\ufeff"), data...)
		case 2:
			if b, err := simplifiedchinese.GBK.NewEncoder().Bytes(data); err == nil {
				data = b
			}
		case 3:
			data = bytes.ReplaceAll(data, []byte("\n"), []byte("\r"))
		}
		enc, _ := sniffEncoding(data)
		switch quirk >> 3 & 3 {
		case 1:
			enc = encGBK
		case 2:
			enc = encGB18030
		case 3:
			enc = encUTF16LE
		}
		checkMessage := func(msg string) {
			if mask.Text(msg) != msg {
				t.Fatalf("message holds a phone number: %q", msg)
			}
		}
		rr, err := newRowReader(bytes.NewReader(data), "f", format, enc)
		if err != nil {
			checkMessage(err.Error())
			return
		}
		now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		for n := 0; n < 1000; n++ {
			r, err := rr.next()
			if err == io.EOF {
				return
			}
			if err != nil {
				var ee *encodingError
				if !errors.As(err, &ee) {
					t.Fatalf("read: %v", err)
				}
				checkMessage(err.Error())
				return
			}
			problems := checkRow(&r, func(u *tasks.Update) error { return u.Validate(now) })
			for _, p := range append(problems, rowWarnings(&r, now)...) {
				checkMessage(p)
			}
			if len(problems) > 0 {
				continue
			}
			task, err := tasks.NewTask(r.u)
			if err != nil {
				continue // an Expiration the real clock has passed
			}
			var u tasks.Update
			if err := json.Unmarshal(task.Payload(), &u); err != nil {
				t.Fatalf("payload %q: %v", task.Payload(), err)
			}
			for _, name := range tasks.KnownColumns {
				v := *tasks.FieldValue(&u, name)
				if !utf8.ValidString(v) || strings.ContainsRune(v, utf8.RuneError) {
					t.Fatalf("payload %s holds damaged text %q", name, v)
				}
				if v != *tasks.FieldValue(&r.u, name) && (name != "IdempotencyKey" && !strings.Contains(strings.Join(r.u.Unused(), ","), name)) {
					t.Fatalf("payload %s = %q, row %q", name, v, *tasks.FieldValue(&r.u, name))
				}
			}
		}
	})
}
