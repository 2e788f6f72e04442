package bench

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// row is the outcome of all repetitions of one scenario.
type row struct {
	Scenario Scenario
	Values   []float64 // one per successful repetition
	Err      error     // why the scenario stopped, if it did
	extras   []row     // figures of Result.Also, until withExtras lays them out
}

// summary is the median, min and max of a row's values.
type summary struct {
	Median, Min, Max float64
}

// summarize returns the median (mean of the middle two for an even count),
// min and max of values; ok is false when there are none.
func summarize(values []float64) (s summary, ok bool) {
	if len(values) == 0 {
		return summary{}, false
	}
	v := append([]float64(nil), values...)
	sort.Float64s(v)
	m := len(v) / 2
	s.Median = v[m]
	if len(v)%2 == 0 {
		s.Median = (v[m-1] + v[m]) / 2
	}
	s.Min, s.Max = v[0], v[len(v)-1]
	return s, true
}

// renderTable writes rows as a markdown table. The last column gives, for a
// scenario with a baseline, its median divided by the baseline's median.
func renderTable(w io.Writer, rows []row) error {
	medians := make(map[string]float64)
	for _, r := range rows {
		if s, ok := summarize(r.Values); ok && r.Err == nil {
			medians[r.Scenario.Name] = s.Median
		}
	}
	var b strings.Builder
	b.WriteString("| scenario | figure | unit | median | min | max | reps | ratio to baseline |\n")
	b.WriteString("|---|---|---|--:|--:|--:|--:|---|\n")
	for _, r := range rows {
		sc := r.Scenario
		cells := []string{"`" + sc.Name + "`", cell(sc.Figure), cell(sc.Unit)}
		s, ok := summarize(r.Values)
		switch {
		case r.Err != nil:
			cells = append(cells, "error: "+cell(r.Err.Error()), "", "", strconv.Itoa(len(r.Values)))
		case !ok:
			cells = append(cells, "no result", "", "", "0")
		default:
			cells = append(cells, formatValue(s.Median), formatValue(s.Min), formatValue(s.Max), strconv.Itoa(len(r.Values)))
		}
		ratio := ""
		if sc.Baseline != "" {
			ratio = "— (`" + sc.Baseline + "`)"
			if base, found := medians[sc.Baseline]; found && ok && r.Err == nil && base > 0 {
				ratio = fmt.Sprintf("%.2f× `%s`", s.Median/base, sc.Baseline)
			}
		}
		cells = append(cells, ratio)
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cell makes s safe inside a markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}

// formatValue prints v with thousands separators when large and about three
// significant digits when small.
func formatValue(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return strconv.FormatFloat(v, 'f', -1, 64)
	case a >= 1000:
		return groupThousands(int64(math.Round(v)))
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
