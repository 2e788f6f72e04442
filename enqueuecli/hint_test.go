package enqueuecli

import (
	"strings"
	"testing"

	"github.com/dyplsq/dyplsq/batch"
)

// TestDeadHintMatchesTheReason: the end of --wait advises a requeue by
// code for rows whose retries ran out, and an export for rows the API
// refused.
func TestDeadHintMatchesTheReason(t *testing.T) {
	for _, c := range []struct {
		name      string
		codes     []batch.CodeCount
		dead      int64
		want, not []string
	}{
		{"retries ran out", []batch.CodeCount{{Outcome: batch.OutcomeDead, Code: "HTTP.503", Rows: 3}}, 3,
			[]string{"enqueue dlq requeue --code HTTP.503 --batch B1"}, []string{"dlq export"}},
		{"refused", []batch.CodeCount{{Outcome: batch.OutcomeDead, Code: "isv.SUBS_NOT_EXIST", Rows: 2}}, 2,
			[]string{"enqueue dlq export --batch B1 --out dead.csv"}, []string{"requeue"}},
		{"both", []batch.CodeCount{{Outcome: batch.OutcomeDead, Code: "isp.SYSTEM_ERROR", Rows: 1},
			{Outcome: batch.OutcomeDead, Code: "isv.BIND_CONFLICT", Rows: 1}}, 2,
			[]string{"enqueue dlq requeue --code isp.SYSTEM_ERROR", "enqueue dlq export"}, nil},
		{"max age", []batch.CodeCount{{Outcome: batch.OutcomeDead, Code: "Job.MaxAgePassed", Rows: 1}}, 1,
			[]string{"requeue --code Job.MaxAgePassed"}, []string{"export"}},
	} {
		st := batch.Status{Codes: c.codes}
		st.Dead = c.dead
		got := deadHint(st, "B1")
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", c.name, got, w)
			}
		}
		for _, w := range c.not {
			if strings.Contains(got, w) {
				t.Errorf("%s: %q has %q", c.name, got, w)
			}
		}
	}
}
