package enqueuecli

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dyplsq/dyplsq/batch"
	"github.com/dyplsq/dyplsq/mask"
	"github.com/dyplsq/dyplsq/tasks"
)

// reportHeader are the columns of --report: the contract's eight, then the
// binding's X number and the value the row sets, to tell rows apart, and
// the row's warnings (fields left out of the call, an Expiration close to
// now, ids written as JSON numbers).
var reportHeader = []string{"line", "SubsId", "OperateType", "task_id", "outcome", "code", "message", "RequestId", "PhoneNoX", "value", "warnings"}

// outcomeNotQueued is the report's outcome of a valid row that was not
// queued (the run stopped before it).
const outcomeNotQueued = "not queued"

// reporter writes --report: one CSV row per input row, joining the input
// with the batch record a chunk of lines at a time.
type reporter struct {
	store       *batch.Store // nil when nothing was queued
	guard       *redisGuard
	id          string
	showNumbers bool
	validate    func(*tasks.Update) error
}

// write reads the input again and writes the report to path ("-": w).
func (rp *reporter) write(ctx context.Context, path string, in *input, stdout io.Writer) error {
	f, err := os.Open(in.path)
	if err != nil {
		return err
	}
	defer f.Close()
	rr, err := newRowReader(f, in.display, in.format, in.enc)
	if err != nil {
		return fmt.Errorf("no report: %w", err)
	}
	out, commit, err := createOutput(path, stdout, !rp.showNumbers)
	if err != nil {
		return err
	}
	defer func() { _ = commit(false) }()
	cw := csv.NewWriter(out)
	_ = cw.Write(reportHeader)
	var rows []inRow
	chunkIdx := -1
	flush := func() error {
		if len(rows) == 0 {
			return nil
		}
		first := chunkIdx * chunkLines
		var rec []batch.Row
		if rp.store != nil {
			err := rp.guard.do(ctx, func(ctx context.Context) error {
				var err error
				rec, err = rp.store.Rows(ctx, rp.id, max(first, 1), first+chunkLines-1)
				return err
			})
			if err != nil {
				return err
			}
		}
		for i := range rows {
			rp.writeRow(cw, &rows[i], rec, max(first, 1))
		}
		rows = rows[:0]
		return cw.Error()
	}
	for {
		r, err := rr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if idx := r.line / chunkLines; idx != chunkIdx {
			if err := flush(); err != nil {
				return err
			}
			chunkIdx = idx
		}
		rows = append(rows, r)
	}
	if err := flush(); err != nil {
		return err
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return commit(true)
}

func (rp *reporter) writeRow(cw *csv.Writer, r *inRow, rec []batch.Row, first int) {
	var row batch.Row
	if i := r.line - first; i >= 0 && i < len(rec) {
		row = rec[i]
	}
	u := r.u
	if row.Outcome == "" {
		if problems := checkRow(r, rp.validate); len(problems) > 0 {
			row.Outcome, row.Message = batch.OutcomeInvalid, strings.Join(problems, "; ")
		} else {
			row.Outcome = outcomeNotQueued
		}
		u = r.u
	} else {
		u.Normalize()
	}
	x, value := u.PhoneNoX, ""
	if f := tasks.OperateTypeField(u.OperateType); f != "" {
		value = *tasks.FieldValue(&u, f)
	}
	if !rp.showNumbers {
		x = mask.Number(x)
		if f := tasks.OperateTypeField(u.OperateType); f == "PhoneNoA" || f == "PhoneNoB" {
			value = mask.Number(value)
		} else {
			value = mask.Text(value)
		}
	}
	ws := rowWarnings(&inRow{line: r.line, u: u, err: r.err, warnings: r.warnings}, time.Now())
	for i, w := range ws {
		ws[i] = strings.TrimPrefix(w, "warning: ")
	}
	_ = cw.Write([]string{strconv.Itoa(r.line), u.SubsId, u.OperateType, row.TaskID, row.Outcome, row.Code,
		mask.Text(row.Message), row.RequestID, x, value, strings.Join(ws, "; ")})
}

// createOutput opens path for writing through a temporary file in the same
// directory, renamed into place by commit(true); "-" writes to stdout. The
// file is created 0600, and made 0644 on commit when public.
func createOutput(path string, stdout io.Writer, public bool) (io.Writer, func(ok bool) error, error) {
	if path == "-" {
		return stdout, func(bool) error { return nil }, nil
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, nil, fmt.Errorf("cannot write %s: %w", path, unwrapPath(err))
	}
	done := false
	commit := func(ok bool) error {
		if done {
			return nil
		}
		done = true
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
			return nil
		}
		if public {
			if err := tmp.Chmod(0o644); err != nil {
				tmp.Close()
				os.Remove(tmp.Name())
				return err
			}
		}
		if err := tmp.Close(); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("cannot write %s: %w", path, err)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("cannot write %s: %w", path, unwrapPath(err))
		}
		return nil
	}
	return tmp, commit, nil
}
