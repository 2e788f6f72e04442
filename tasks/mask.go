package tasks

import "strings"

// This file masks phone numbers in the reasons of a [ValidationError]. It
// follows the rules of dypls.Mask, the project's masking function, which
// this package cannot import (dypls imports tasks); a test in dypls checks
// that the two agree.

// maskNumbers masks every phone number in s, written as one run of digits
// or in groups; see dypls.Mask for the rules. Ids longer than a phone
// number stay whole.
func maskNumbers(s string) string {
	if !mayHoldNumber(s) {
		return s
	}
	for {
		m := maskSpans(s)
		if m == s {
			return m
		}
		s = m
	}
}

// maskNumber masks one phone number as dypls.MaskNumber does.
func maskNumber(n string) string {
	if len(n) <= 7 {
		return "****"
	}
	return n[:3] + "****" + n[len(n)-4:]
}

// mayHoldNumber reports whether s has the ten digits a phone number needs.
func mayHoldNumber(s string) bool {
	n := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			if n++; n >= 10 {
				return true
			}
		}
	}
	return false
}

// group is one run of digits in a span: s[start:end].
type group struct{ start, end int }

// maxSep is the most separator characters between two groups of a number
// ("-", " ", ") ", ...).
const maxSep = 2

// isSep reports whether c may join the groups of a number.
func isSep(c byte) bool { return c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' }

// maskSpans masks the numbers in s: each span of digit groups joined by
// separators is split into numbers, or left as it is.
func maskSpans(s string) string {
	var b strings.Builder
	var groups []group
	done := 0 // s[:done] is written to b, or needs no change while b is empty
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		// A span: groups of digits with at most maxSep separators between.
		groups = groups[:0]
		j := i
		for {
			k := j
			for k < len(s) && isDigit(s[k]) {
				k++
			}
			groups = append(groups, group{j, k})
			n := k
			for n < len(s) && n-k < maxSep && isSep(s[n]) {
				n++
			}
			if n == k || n >= len(s) || !isDigit(s[n]) {
				j = k
				break
			}
			j = n
		}
		if m, changed := maskGroups(s, groups); changed {
			if b.Len() == 0 {
				b.Grow(len(s))
			}
			b.WriteString(s[done:i])
			b.WriteString(m)
			done = j
		}
		i = j
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

// maskGroups returns the span s[gs[0].start:gs[len(gs)-1].end] with its
// numbers masked, and whether anything changed.
func maskGroups(s string, gs []group) (string, bool) {
	var b strings.Builder
	last := gs[0].start // s[last:] is not written yet
	changed := false
	for i := 0; i < len(gs); {
		// The longest window of groups from i that is one number.
		best, cc := 0, 0
		for m := min(len(gs)-i, 6); m >= 1; m-- {
			if c, ok := isNumber(s, gs[i:i+m]); ok {
				best, cc = m, c
				break
			}
		}
		if best == 0 {
			i++
			continue
		}
		changed = true
		if best == 1 {
			// One run, as MaskNumber shows it behind its country code.
			g := gs[i]
			b.WriteString(s[last:g.start])
			b.WriteString(s[g.start : g.start+cc])
			b.WriteString(maskNumber(s[g.start+cc : g.end]))
			last = g.end
			i++
			continue
		}
		// Keep the country code, the first three and the last four digits
		// of the number; hide the rest, one "*" per digit.
		total := 0
		for _, g := range gs[i : i+best] {
			total += g.end - g.start
		}
		lo, hi := cc+3, total-4 // digit positions to hide: [lo, hi)
		pos := 0
		for _, g := range gs[i : i+best] {
			b.WriteString(s[last:g.start])
			for p := g.start; p < g.end; p++ {
				if pos >= lo && pos < hi {
					b.WriteByte('*')
				} else {
					b.WriteByte(s[p])
				}
				pos++
			}
			last = g.end
		}
		i += best
	}
	b.WriteString(s[last:gs[len(gs)-1].end])
	return b.String(), changed
}

// isNumber reports whether the groups gs, taken together, are one phone
// number, and how many leading digits are its country code.
func isNumber(s string, gs []group) (cc int, ok bool) {
	var d []byte
	for _, g := range gs {
		d = append(d, s[g.start:g.end]...)
	}
	if len(gs) == 1 {
		r := string(d)
		switch {
		case isPhoneShape(r):
			return 0, true
		case isPhoneRun(r):
			return 2, true // 86 and a number
		}
		return 0, false
	}
	dotted := false
	for k := 1; k < len(gs); k++ {
		dotted = dotted || strings.Contains(s[gs[k-1].end:gs[k].start], ".")
	}
	if dotted && (len(gs) < 3 || len(gs) == 4 && onlyDots(s, gs) && allShort(gs)) {
		return 0, false
	}
	first := gs[0].end - gs[0].start
	switch ds := string(d); {
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
func onlyDots(s string, gs []group) bool {
	for k := 1; k < len(gs); k++ {
		if s[gs[k-1].end:gs[k].start] != "." {
			return false
		}
	}
	return true
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
