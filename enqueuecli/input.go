package enqueuecli

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dyplsq/dyplsq/mask"
	"github.com/dyplsq/dyplsq/tasks"
)

// Input formats.
const (
	formatCSV   = "csv"
	formatJSONL = "jsonl"
)

// input is the file being queued, opened once per pass.
type input struct {
	path    string // the file to read (a spool of stdin for "-")
	display string // how messages and the batch record name it: the argument (masked: a file may be named after a phone number), or "stdin"
	format  string
	// enc is the encoding the file is read in (see encoding.go), given
	// with --encoding (encFlag) or sniffed; notes say what the reader
	// noticed about the file, for one line each on stderr.
	enc     string
	encFlag bool
	notes   []string
	size    int64
	modTime time.Time
	cleanup func()
}

// openInput names the input and, for "-", spools stdin to a temporary file
// (0600, removed by cleanup) so that it can be read twice. The format comes
// from formatFlag, else the extension, else the first byte of the content;
// the encoding from encodingFlag, else a byte-order mark, else UTF-8.
func openInput(arg, formatFlag, encodingFlag string, stdin io.Reader) (*input, error) {
	in := &input{path: arg, display: mask.Text(arg), cleanup: func() {}}
	if arg == "-" {
		f, err := os.CreateTemp("", "enqueue-stdin-*")
		if err != nil {
			return nil, fmt.Errorf("cannot spool stdin to a temporary file: %w", err)
		}
		in.path, in.display = f.Name(), "stdin"
		in.cleanup = func() { os.Remove(f.Name()) }
		_, err = io.Copy(f, stdin)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			in.cleanup()
			return nil, fmt.Errorf("cannot spool stdin to %s: %w", f.Name(), err)
		}
	}
	st, err := os.Stat(in.path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", arg, unwrapPath(err))
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a directory: give a CSV or JSON Lines file", arg)
	}
	in.size, in.modTime = st.Size(), st.ModTime()
	head, err := readHead(in.path)
	if err != nil {
		in.cleanup()
		return nil, fmt.Errorf("cannot read %s: %w", arg, unwrapPath(err))
	}
	if encodingFlag != "" {
		if in.enc, err = parseEncoding(encodingFlag); err != nil {
			in.cleanup()
			return nil, err
		}
		in.encFlag = true
		if err := alreadyUTF8(in.display, head, in.enc); err != nil {
			in.cleanup()
			return nil, err
		}
	} else {
		var note string
		if in.enc, note = sniffEncoding(head); note != "" {
			in.notes = append(in.notes, "read as "+note)
		}
	}
	text, _ := io.ReadAll(decodeText(bytes.NewReader(head), in.enc))
	if crOnly(text) {
		in.notes = append(in.notes, "its lines end in CR alone (as old Mac Excel saves them): read as line breaks")
	}
	switch f := strings.ToLower(strings.TrimSpace(formatFlag)); f {
	case formatCSV, formatJSONL:
		in.format = f
	case "json", "ndjson":
		in.format = formatJSONL
	case "":
		in.format = detectFormat(text, arg)
	default:
		in.cleanup()
		return nil, usagef("--format %q: want csv or jsonl", formatFlag)
	}
	return in, nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// readHead returns the first 64 KiB of the file at path.
func readHead(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, 64<<10)
	n, err := io.ReadFull(f, b)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = nil
	}
	return b[:n], err
}

// detectFormat picks csv or jsonl by the extension of arg, or, for stdin and
// other extensions, by the first character of the decoded text: "{" is JSON
// Lines.
func detectFormat(text []byte, arg string) string {
	switch strings.ToLower(filepath.Ext(arg)) {
	case ".csv":
		return formatCSV
	case ".jsonl", ".ndjson", ".json":
		return formatJSONL
	}
	b := bytes.TrimLeft(text, " \t\r\n")
	if len(b) > 0 && b[0] == '{' {
		return formatJSONL
	}
	return formatCSV
}

// hashFormat is the format as the batch id counts it: the encoding the
// file is read in, given with --encoding or found from a byte-order mark or
// the text, is part of it, since the same bytes read another way are other
// rows; the same file read the same way has the same id, flag or not.
func (in *input) hashFormat() string {
	if in.enc != encUTF8 {
		return in.format + "/" + in.enc
	}
	return in.format
}

// legacyHashFormat is the format as earlier versions counted it: with the
// encoding only when --encoding named it. A batch they began on a file whose
// encoding was found rather than given has that id, and is resumed by it.
func (in *input) legacyHashFormat() string {
	if in.encFlag && in.enc != encUTF8 {
		return in.format + "/" + in.enc
	}
	return in.format
}

// inRow is one data row of the input.
type inRow struct {
	line     int          // the line it starts on (1-based; a CSV header is line 1)
	u        tasks.Update // its values, not yet normalized
	err      error        // why the row could not be read, if it could not
	warnings []string     // what the reader noticed, as "Field: reason"

	// From the columns a dead-letter export adds: the task id of the dead
	// job the row was exported from, and when the export was made.
	deadTask, exportedAt string
}

// rowReader reads the rows of an input file one at a time.
type rowReader struct {
	name   string
	format string

	csv  *csv.Reader
	cols []string // canonical field per column; "" for ignored columns
	idx  [][]int  // index of each column's field in tasks.Update; nil for ignored columns

	// The columns _task_id and _exported_at of a dead-letter export; -1
	// when absent.
	deadTaskCol, exportedCol int

	br   *bufio.Reader
	line int
	buf  []byte

	last int // last line seen
}

// headerError lists what is wrong with a CSV header.
type headerError struct {
	file     string
	problems []string
}

func (e *headerError) Error() string {
	lines := make([]string, len(e.problems))
	for i, p := range e.problems {
		lines[i] = fmt.Sprintf("%s:1: %s", e.file, p)
	}
	return strings.Join(lines, "\n")
}

// newRowReader starts reading r, a file in encoding enc; for CSV it reads
// and checks the header. A line that is not UTF-8 once decoded stops the
// reading with an [*encodingError]: no such text reaches a row.
func newRowReader(r io.Reader, name, format, enc string) (*rowReader, error) {
	rr := &rowReader{name: name, format: format}
	r = decodeReader(r, enc)
	if format == formatJSONL {
		rr.br = bufio.NewReaderSize(r, 256<<10)
		return rr, nil
	}
	br := bufio.NewReaderSize(r, 256<<10)
	rr.csv = csv.NewReader(br)
	if tabSeparated(br) {
		rr.csv.Comma = '\t' // Excel's "Unicode text" and "Text (Tab delimited)"
	}
	rr.csv.FieldsPerRecord = -1
	rr.csv.ReuseRecord = true
	header, err := rr.csv.Read()
	if err == io.EOF {
		return nil, &headerError{file: name, problems: []string{"the file is empty: the first line must be a header of column names, such as PoolKey,SubsId,PhoneNoX,OperateType,PhoneNoA"}}
	}
	if err != nil {
		return nil, &headerError{file: name, problems: []string{"cannot read the header: " + csvErr(err)}}
	}
	rr.last = 1
	rr.deadTaskCol, rr.exportedCol = -1, -1
	if err := rr.checkUTF8(header, 1); err != nil {
		return nil, err
	}
	for _, h := range header {
		if strings.IndexByte(h, 0) >= 0 {
			return nil, &encodingError{file: name, line: 1, guess: noBOMUTF16}
		}
	}
	var problems []string
	seen := map[string]int{} // canonical field → its column (0-based)
	rr.cols = make([]string, len(header))
	names := make([]string, len(header))
	for i, h := range header {
		h = strings.TrimSpace(h)
		names[i] = h
		f, ok := tasks.CanonicalField(h)
		prev, dup := seen[f]
		switch {
		case strings.HasPrefix(h, "_"):
			// ignored column, but for what an export tells of the row
			switch strings.ToLower(h) {
			case colTaskID:
				rr.deadTaskCol = i
			case colExportedAt:
				rr.exportedCol = i
			}
		case h == "":
			problems = append(problems, fmt.Sprintf("column %d has no name: name it after an API parameter, or start its name with _ to have it ignored", i+1))
		case !ok:
			hint := ""
			if strings.ContainsAny(h, ";\t|") {
				hint = "; the header seems to use another separator: save the file as comma-separated CSV"
			}
			// Masked once quoted: an escape such as \x19 can join digits.
			problems = append(problems, fmt.Sprintf("unknown column %s (known columns: %s; columns starting with _ are ignored)%s",
				mask.Text(strconv.Quote(mask.Text(h))), strings.Join(tasks.KnownColumns, ", "), hint))
		case dup:
			problems = append(problems, fmt.Sprintf("duplicate column %q (column %d): %s is already column %d (%q); keep one (known columns: %s)",
				h, i+1, f, prev+1, names[prev], strings.Join(tasks.KnownColumns, ", ")))
		default:
			seen[f] = i
			rr.cols[i] = f
		}
	}
	if len(problems) > 0 {
		return nil, &headerError{file: name, problems: problems}
	}
	rr.idx = make([][]int, len(rr.cols))
	for i, f := range rr.cols {
		if f != "" {
			rr.idx[i] = fieldIndex(f)
		}
	}
	return rr, nil
}

// tabSeparated reports whether the header line, the first line br holds,
// separates its columns with tabs and has no comma.
func tabSeparated(br *bufio.Reader) bool {
	head, _ := br.Peek(64 << 10)
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		head = head[:i]
	}
	return bytes.IndexByte(head, '\t') >= 0 && bytes.IndexByte(head, ',') < 0
}

// updateType is the type the CSV reader fills.
var updateType = reflect.TypeFor[tasks.Update]()

// fieldIndex returns the index of the string field of tasks.Update that
// tasks.FieldValue names field, found once per column rather than per cell.
func fieldIndex(field string) []int {
	var u tasks.Update
	p := tasks.FieldValue(&u, field)
	v := reflect.ValueOf(&u).Elem()
	for i := range updateType.NumField() {
		if f := v.Field(i); f.Kind() == reflect.String && f.Addr().Interface() == any(p) {
			return []int{i}
		}
	}
	panic("enqueue: no field of tasks.Update for column " + field)
}

// next returns the next data row, or io.EOF after the last.
func (rr *rowReader) next() (inRow, error) {
	if rr.format == formatJSONL {
		return rr.nextJSON()
	}
	for {
		rec, err := rr.csv.Read()
		if err == io.EOF {
			return inRow{}, io.EOF
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			rr.last = max(rr.last, pe.Line)
			return inRow{line: pe.StartLine, err: errors.New(csvErr(err))}, nil
		}
		if err != nil {
			return inRow{}, fmt.Errorf("read %s: %w", rr.name, err)
		}
		line, _ := rr.csv.FieldPos(0)
		endLine, _ := rr.csv.FieldPos(len(rec) - 1)
		rr.last = max(rr.last, endLine)
		if err := rr.checkUTF8(rec, line); err != nil {
			return inRow{}, err
		}
		if blank(rec) {
			continue
		}
		row := inRow{line: line}
		if len(rec) != len(rr.cols) {
			row.err = fmt.Errorf("has %d fields, the header has %d: check the commas and the quoting of this line", len(rec), len(rr.cols))
			return row, nil
		}
		v := reflect.ValueOf(&row.u).Elem()
		for i, idx := range rr.idx {
			if idx != nil {
				v.FieldByIndex(idx).SetString(rec[i])
			}
		}
		if rr.deadTaskCol >= 0 {
			row.deadTask = strings.TrimSpace(rec[rr.deadTaskCol])
		}
		if rr.exportedCol >= 0 {
			row.exportedAt = strings.TrimSpace(rec[rr.exportedCol])
		}
		return row, nil
	}
}

// checkUTF8 returns an [*encodingError] if a field of rec, which starts on
// line, is not UTF-8.
func (rr *rowReader) checkUTF8(rec []string, line int) error {
	for i, f := range rec {
		if !utf8.ValidString(f) {
			if col, _ := rr.csv.FieldPos(i); col > 0 {
				line = col
			}
			return notUTF8(rr.name, line, []byte(f))
		}
	}
	return nil
}

func blank(rec []string) bool {
	for _, v := range rec {
		if strings.TrimSpace(v) != "" {
			return false
		}
	}
	return true
}

func csvErr(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		msg := pe.Err.Error()
		switch {
		case errors.Is(pe.Err, csv.ErrBareQuote):
			msg = `a " inside a field that is not quoted: quote the whole field ("a ""b"" c")`
		case errors.Is(pe.Err, csv.ErrQuote):
			msg = `a quoted field is not closed, or text follows its closing quote`
		}
		if pe.Line != pe.StartLine {
			return fmt.Sprintf("%s (at line %d, column %d)", msg, pe.Line, pe.Column)
		}
		return fmt.Sprintf("%s (column %d)", msg, pe.Column)
	}
	return err.Error()
}

func (rr *rowReader) nextJSON() (inRow, error) {
	for {
		b, err := rr.readLine()
		if err == io.EOF && b == nil {
			return inRow{}, io.EOF
		}
		if err != nil && err != io.EOF {
			return inRow{}, fmt.Errorf("read %s: %w", rr.name, err)
		}
		rr.line++
		rr.last = rr.line
		if !utf8.Valid(b) {
			// encoding/json would turn these bytes into U+FFFD.
			return inRow{}, notUTF8(rr.name, rr.line, b)
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		row := inRow{line: rr.line}
		if err := json.Unmarshal(b, &row.u); err != nil {
			row.err = jsonErr(err)
		} else if bareNumber.Match(b) {
			row.warnings = numberWarnings(b)
		}
		return row, nil
	}
}

// readLine returns the next line without its line break; nil and io.EOF
// at the end.
func (rr *rowReader) readLine() ([]byte, error) {
	b, err := rr.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		rr.buf = append(rr.buf[:0], b...)
		for err == bufio.ErrBufferFull {
			b, err = rr.br.ReadSlice('\n')
			rr.buf = append(rr.buf, b...)
		}
		b = rr.buf
	}
	if err == io.EOF && len(b) == 0 {
		return nil, io.EOF
	}
	if err != nil && err != io.EOF {
		return nil, err
	}
	return bytes.TrimSuffix(b, []byte("\n")), nil
}

// bareNumber finds a JSON number written as a value, cheaply: most files
// write every value as a string and never need numberWarnings.
var bareNumber = regexp.MustCompile(`:\s*-?[0-9]`)

// idFields are the fields whose values are numbers to a person but ids to
// the API: written as JSON numbers, they pass through programs that read
// numbers as floating point and lose digits.
var idFields = []string{"SubsId", "PhoneNoX", "PhoneNoA", "PhoneNoB", "GroupId"}

// numberWarnings names the id fields of a JSON Lines row written as JSON
// numbers.
func numberWarnings(b []byte) []string {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	var out []string
	for k, v := range m {
		f, ok := tasks.CanonicalField(k)
		if !ok || !slices.Contains(idFields, f) || len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
			continue
		}
		out = append(out, f+": written as a JSON number: write numbers and ids as strings (\"1000000768790001\"); a program that reads JSON numbers as floating point can change their digits")
	}
	slices.Sort(out)
	return out
}

func jsonErr(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("not valid JSON at character %d: %s (each line must be one JSON object)", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("not a JSON object: each line must be one object such as {\"SubsId\":\"...\",\"OperateType\":\"updateNoA\",...}")
	}
	return errors.New(strings.TrimPrefix(err.Error(), "json: "))
}

// lastLine is the last line of the input read so far.
func (rr *rowReader) lastLine() int { return rr.last }

// checkRow normalizes r and returns its problems, each as "Field: reason"
// or a reason, masked; none for a valid row.
func checkRow(r *inRow, validate func(*tasks.Update) error) []string {
	if r.err != nil {
		return []string{mask.Text(r.err.Error())}
	}
	r.u.Normalize()
	err := validate(&r.u)
	if err == nil {
		if p := deadKeyProblem(r.u, r.deadTask); p != "" {
			return []string{p}
		}
		return nil
	}
	var ve *tasks.ValidationError
	if errors.As(err, &ve) {
		out := make([]string, len(ve.Problems))
		for i, p := range ve.Problems {
			out[i] = mask.Text(p.String())
		}
		return out
	}
	return []string{mask.Text(err.Error())}
}

// rowWarnings returns what is worth knowing about row r, read and
// normalized by checkRow, at time now without making it invalid, each as
// "warning: Field: reason", masked: what the reader noticed and
// [tasks.Update.Warnings].
func rowWarnings(r *inRow, now time.Time) []string {
	var out []string
	for _, w := range r.warnings {
		out = append(out, "warning: "+mask.Text(w))
	}
	if r.err == nil {
		for _, w := range r.u.Warnings(now) {
			out = append(out, "warning: "+mask.Text(w.String()))
		}
	}
	return out
}

// problemPrinter prints row problems as FILE:LINE: Field: reason: all of
// them, or on a terminal the first limit with a count of the rest.
type problemPrinter struct {
	w       io.Writer
	file    string
	limit   int // 0: no limit
	shown   int
	hidden  int
	hiddenR int // rows with hidden problems
}

func (p *problemPrinter) row(line int, problems []string) {
	hid := false
	for _, pr := range problems {
		if p.limit > 0 && p.shown >= p.limit {
			p.hidden++
			hid = true
			continue
		}
		fmt.Fprintf(p.w, "%s:%d: %s\n", p.file, line, pr)
		p.shown++
	}
	if hid {
		p.hiddenR++
	}
}

func (p *problemPrinter) finish() {
	if p.hidden > 0 {
		fmt.Fprintf(p.w, "%s: … and %d more problems in %d more rows, not shown on a terminal (redirect stderr to a file to see them all, e.g. 2>problems.txt)\n",
			p.file, p.hidden, p.hiddenR)
	}
}

// deadKeyProblem reports a row exported from a dead job that still carries
// that job's IdempotencyKey: queued with it, the row would find the dead
// job's task id taken and be recorded a duplicate, and the fix would never
// run.
func deadKeyProblem(u tasks.Update, deadTask string) string {
	key := strings.TrimSpace(u.IdempotencyKey)
	if deadTask == "" || key == "" || tasks.TaskIDForKey(key) != deadTask {
		return ""
	}
	return fmt.Sprintf("%s: this is the key of the dead job %s the row was exported from, so the row would be taken for a duplicate of that job and never run: clear the %s column (or give a new key) to queue the fix as a new version",
		tasks.FieldIdempotencyKey, deadTask, tasks.FieldIdempotencyKey)
}
