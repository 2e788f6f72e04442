package dypls

import (
	"regexp"
	"strings"
)

// Mask hides phone numbers in s, for everything a person or a log pipeline
// reads. Every run of digits that has the shape of a phone number (10 to 12
// digits starting with 0 or 1, optionally behind the country code 86) keeps
// its first three and last four digits: 13812345678 becomes 138****5678.
// Longer or shorter digit runs (SubsId, RequestId, timestamps) stay whole.
//
// It is the one masking function of the project; logs, stored errors,
// results, metric labels, the UI and CLI output all go through it.
func Mask(s string) string {
	if !hasPhoneRun(s) {
		return s
	}
	// UUIDs (RequestIds, task ids) can hold a phone-shaped digit run in a
	// group: they stay whole.
	ids := uuidShape.FindAllStringIndex(s, -1)
	if len(ids) == 0 {
		return maskRuns(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	last := 0
	for _, m := range ids {
		b.WriteString(maskRuns(s[last:m[0]]))
		b.WriteString(s[m[0]:m[1]])
		last = m[1]
	}
	b.WriteString(maskRuns(s[last:]))
	return b.String()
}

var uuidShape = regexp.MustCompile(`[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}`)

func maskRuns(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			b.WriteByte(s[i])
			i++
			continue
		}
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		b.WriteString(maskRun(s[i:j]))
		i = j
	}
	return b.String()
}

// MaskNumber masks one value known to be a phone number, whatever its
// shape: all but the first three and last four characters are hidden, and
// values of seven characters or fewer are hidden entirely.
func MaskNumber(n string) string {
	if n == "" {
		return ""
	}
	if len(n) <= 7 {
		return "****"
	}
	return n[:3] + "****" + n[len(n)-4:]
}

func hasPhoneRun(s string) bool {
	run := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && isDigit(s[i]) {
			run++
			continue
		}
		if run >= 10 && run <= 14 && isPhoneRun(s[i-run:i]) {
			return true
		}
		run = 0
	}
	return false
}

func isPhoneRun(r string) bool {
	if len(r) >= 12 && strings.HasPrefix(r, "86") && isPhoneShape(r[2:]) {
		return true
	}
	return isPhoneShape(r)
}

func isPhoneShape(r string) bool {
	return len(r) >= 10 && len(r) <= 12 && (r[0] == '0' || r[0] == '1')
}

func maskRun(r string) string {
	if !isPhoneRun(r) {
		return r
	}
	if len(r) >= 12 && strings.HasPrefix(r, "86") && isPhoneShape(r[2:]) && !isPhoneShape(r) {
		return "86" + MaskNumber(r[2:])
	}
	return MaskNumber(r)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
