// Package mask hides phone numbers in text that people or log pipelines
// read: logs, stored errors, results, metric labels, the UI and CLI output.
// It is the project's one masking implementation; every other package calls
// it, and it imports nothing of the project.
package mask

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// Text hides phone numbers in s, for everything a person or a log pipeline
// reads. Every run of digits that has the shape of a phone number (10 to 12
// digits starting with 0 or 1, optionally behind the country code 86) keeps
// its first three and last four digits: 13812345678 becomes 138****5678.
// Longer or shorter digit runs (SubsId, RequestId, timestamps) stay whole.
//
// Numbers written in groups are caught too: groups of digits joined by up
// to three separators (spaces, including the ideographic and no-break
// spaces, "-" and the en and em dashes, ".", "/" or parentheses),
// optionally behind +86, 86 or 0086, whose digits together have that shape
// ("+86 138-0013-8000", "(010) 8765 4321", "138 - 0013 - 8000"). Full-width
// digits count as digits. Their hidden digits become "*" one for one and the
// separators stay: "+86 138-****-8000". To leave dates, decimals and
// addresses alone, every group but a first one behind a country code has at
// least three digits, a number written with "." has at least three groups
// unless it is a mobile number split once after three or seven digits
// ("138.00138000"), and four dotted groups of at most three digits (an IPv4
// address) are not a number.
//
// It is the one masking function of the project; logs, stored errors,
// results, metric labels, the UI and CLI output all go through it.
func Text(s string) string {
	if !mayHoldNumber(s) {
		return s
	}
	// UUIDs (RequestIds, task ids) can hold a phone-shaped digit run in a
	// group: they stay whole, but only a UUID standing on its own, so that
	// digits glued before one ("13800138000-aaaa-…") are not hidden in it.
	ids := standaloneUUIDs(s)
	if len(ids) == 0 {
		return maskAll(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	last := 0
	for _, m := range ids {
		b.WriteString(maskAll(s[last:m[0]]))
		b.WriteString(s[m[0]:m[1]])
		last = m[1]
	}
	b.WriteString(maskAll(s[last:]))
	return b.String()
}

// standaloneUUIDs returns the spans of the UUIDs in s that no letter or
// digit touches on either side.
func standaloneUUIDs(s string) [][]int {
	ids := uuidShape.FindAllStringIndex(s, -1)
	out := ids[:0]
	for _, m := range ids {
		if (m[0] == 0 || !alnum(s[m[0]-1])) && (m[1] == len(s) || !alnum(s[m[1]])) {
			out = append(out, m)
		}
	}
	return out
}

func alnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

var uuidShape = regexp.MustCompile(`[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}`)

// maskAll masks s until nothing is left to mask: the digits a masked
// number keeps can form a number with a group beside it.
func maskAll(s string) string {
	for {
		m := maskSpans(s)
		if m == s {
			return m
		}
		s = m
	}
}

// char is one rune of a string being masked: s[start:end], classed as a
// digit (digit is its value '0'..'9', from an ASCII or a full-width digit),
// a separator, or neither.
type char struct {
	start, end int
	digit      byte
	sep        rune
}

// scanChars classes the runes of s. Separators are kept as the ASCII
// character they stand for: the ideographic and no-break spaces as ' ',
// en and em dashes as '-'.
func scanChars(s string) []char {
	cs := make([]char, 0, len(s))
	for i, r := range s {
		c := char{start: i, end: i + utf8.RuneLen(r)}
		if r == utf8.RuneError {
			c.end = i + 1
		}
		switch {
		case r >= '0' && r <= '9':
			c.digit = byte(r)
		case r >= '０' && r <= '９':
			c.digit = byte(r-'０') + '0'
		case r == ' ', r == '\u3000', r == '\u00a0':
			c.sep = ' '
		case r == '-', r == '\u2013', r == '\u2014':
			c.sep = '-'
		case r == '.', r == '(', r == ')', r == '/':
			c.sep = r
		}
		cs = append(cs, c)
	}
	return cs
}

// mayHoldNumber reports whether s has the ten digits, ASCII or full-width,
// a phone number needs.
func mayHoldNumber(s string) bool {
	n := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) || i+2 < len(s) && s[i] == 0xEF && s[i+1] == 0xBC && s[i+2] >= 0x90 && s[i+2] <= 0x99 {
			if n++; n >= 10 {
				return true
			}
		}
	}
	return false
}

// group is one run of digits in a span: chars[start:end].
type group struct{ start, end int }

// maxSep is the most separator characters between two groups of a number
// ("-", " ", ") ", " - ", ...).
const maxSep = 3

// maskSpans masks the numbers in s: each span of digit groups joined by
// separators is split into numbers, or left as it is.
func maskSpans(s string) string {
	cs := scanChars(s)
	var b strings.Builder
	var groups []group
	done := 0 // s[:done] is written to b, or needs no change while b is empty
	for i := 0; i < len(cs); {
		if cs[i].digit == 0 {
			i++
			continue
		}
		// A span: groups of digits with at most maxSep separators between.
		groups = groups[:0]
		j := i
		for {
			k := j
			for k < len(cs) && cs[k].digit != 0 {
				k++
			}
			groups = append(groups, group{j, k})
			n := k
			for n < len(cs) && n-k < maxSep && cs[n].sep != 0 {
				n++
			}
			if n == k || n >= len(cs) || cs[n].digit == 0 {
				j = k
				break
			}
			j = n
		}
		if m, changed := maskGroups(s, cs, groups); changed {
			if b.Len() == 0 {
				b.Grow(len(s))
			}
			b.WriteString(s[done:cs[i].start])
			b.WriteString(m)
			done = cs[j-1].end
		}
		i = j
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

// maskGroups returns the span of s that the groups cover with its numbers
// masked, and whether anything changed.
func maskGroups(s string, cs []char, gs []group) (string, bool) {
	var b strings.Builder
	last := gs[0].start // cs[last:] is not written yet
	changed := false
	text := func(from, to int) string { return s[cs[from].start:cs[to-1].end] }
	for i := 0; i < len(gs); {
		// The longest window of groups from i that is one number.
		best, cc := 0, 0
		for m := min(len(gs)-i, 6); m >= 1; m-- {
			if c, ok := isNumber(cs, gs[i:i+m]); ok {
				best, cc = m, c
				break
			}
		}
		if best == 0 {
			i++
			continue
		}
		changed = true
		// Keep the country code, the first three and the last four digits
		// of the number (all of a number of seven digits or fewer is
		// hidden); hide the rest, one "*" per digit.
		total := 0
		for _, g := range gs[i : i+best] {
			total += g.end - g.start
		}
		lo, hi := cc+3, total-4 // digit positions to hide: [lo, hi)
		if best == 1 {
			// One run, as Number shows it behind its country code:
			// four stars.
			g := gs[i]
			if g.start > last {
				b.WriteString(text(last, g.start))
			}
			b.WriteString(text(g.start, g.start+lo))
			b.WriteString("****")
			b.WriteString(text(g.end-4, g.end))
			last = g.end
			i++
			continue
		}
		pos := 0
		for _, g := range gs[i : i+best] {
			if g.start > last {
				b.WriteString(text(last, g.start))
			}
			for p := g.start; p < g.end; p++ {
				if pos >= lo && pos < hi {
					b.WriteByte('*')
				} else {
					b.WriteString(text(p, p+1))
				}
				pos++
			}
			last = g.end
		}
		i += best
	}
	if end := gs[len(gs)-1].end; end > last {
		b.WriteString(text(last, end))
	}
	return b.String(), changed
}

// isNumber reports whether the groups gs, taken together, are one phone
// number, and how many leading digits are its country code.
func isNumber(cs []char, gs []group) (cc int, ok bool) {
	var d []byte
	for _, g := range gs {
		for _, c := range cs[g.start:g.end] {
			d = append(d, c.digit)
		}
	}
	ds := string(d)
	if len(gs) == 1 {
		switch {
		case isPhoneShape(ds):
			return 0, true
		case isPhoneRun(ds):
			return 2, true // 86 and a number
		}
		return 0, false
	}
	dotted := false
	for k := 1; k < len(gs); k++ {
		for _, c := range cs[gs[k-1].end:gs[k].start] {
			dotted = dotted || c.sep == '.'
		}
	}
	first := gs[0].end - gs[0].start
	switch {
	case !dotted:
	case len(gs) == 2:
		// Two dotted groups are a decimal, unless they make a mobile
		// number split after its prefix or before its last four digits
		// (138.00138000, 1380013.8000).
		if !onlyDots(cs, gs) || !isMobile(ds) || first != 3 && first != 7 {
			return 0, false
		}
	case len(gs) == 4 && onlyDots(cs, gs) && allShort(gs):
		return 0, false // an IPv4 address
	}
	switch {
	case isPhoneShape(ds):
	case first >= 4 && strings.HasPrefix(ds, "0086") && isPhoneShape(ds[4:]):
		cc = 4
	case first >= 2 && strings.HasPrefix(ds, "86") && isPhoneShape(ds[2:]):
		cc = 2
	default:
		return 0, false
	}
	// Group sizes: three digits or more, except that behind a country
	// code written apart the next group may have two (+86 10 8765 4321).
	for k, g := range gs {
		n := g.end - g.start
		switch {
		case k == 0 && cc > 0 && n == cc:
		case k == 0:
			if n-cc < 3 {
				return 0, false
			}
		case k == 1 && cc > 0 && first == cc:
			if n < 2 {
				return 0, false
			}
		case n < 3:
			return 0, false
		}
	}
	return cc, true
}

// isMobile reports whether the digits ds are a mainland mobile number.
func isMobile(ds string) bool {
	return len(ds) == 11 && ds[0] == '1' && ds[1] >= '3' && ds[1] <= '9'
}

// allShort reports whether every group has at most three digits.
func allShort(gs []group) bool {
	for _, g := range gs {
		if g.end-g.start > 3 {
			return false
		}
	}
	return true
}

// onlyDots reports whether every separator between the groups is one ".".
func onlyDots(cs []char, gs []group) bool {
	for k := 1; k < len(gs); k++ {
		if gs[k].start-gs[k-1].end != 1 || cs[gs[k-1].end].sep != '.' {
			return false
		}
	}
	return true
}

// Number masks one value known to be a phone number, whatever its
// shape: all but the first three and last four characters are hidden, and
// values of seven characters or fewer are hidden entirely.
func Number(n string) string {
	if n == "" {
		return ""
	}
	r := []rune(n)
	if len(r) <= 7 {
		return "****"
	}
	return string(r[:3]) + "****" + string(r[len(r)-4:])
}

// Stars hides the middle of a value that may be a phone number, one "*"
// per hidden character, keeping the first 3 and last 4 characters
// ("075512345678" becomes "075*****5678"), so that the value's length still
// shows. Values shorter than 8 characters are hidden entirely. Validation
// reasons use it where they speak of the value's length; elsewhere use
// [Number], which hides the length too.
func Stars(v string) string {
	r := []rune(v)
	if len(r) < 8 {
		return strings.Repeat("*", len(r))
	}
	return string(r[:3]) + strings.Repeat("*", len(r)-7) + string(r[len(r)-4:])
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

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
