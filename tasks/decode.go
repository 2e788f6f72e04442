package tasks

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// decodeOnePass decodes, in one pass over data, the payload every producer
// of this package writes: a JSON object whose values are strings without
// escapes, plus a "_meta" object (which json.Unmarshal reads). ok is false
// for anything else (a number, a boolean, null, an escape, a control
// character or invalid UTF-8 in a string, an unknown or repeated key,
// malformed JSON): the caller then decodes data with the general decoder,
// which also gives the error. Where ok is true, the result is the one the
// general decoder gives (FuzzDecodeOnePass checks).
func decodeOnePass(data []byte) (u Update, ok bool) {
	var seenBuf [len(apiFields) + 2]string // the fields, IdempotencyKey and _meta
	seen := seenBuf[:0]
	i := skipBlank(data, 0)
	if i >= len(data) || data[i] != '{' {
		return Update{}, false
	}
	i = skipBlank(data, i+1)
	if i < len(data) && data[i] == '}' {
		return u, skipBlank(data, i+1) == len(data)
	}
	for {
		key, j, ok := plainString(data, i)
		if !ok {
			return Update{}, false
		}
		if i = skipBlank(data, j); i >= len(data) || data[i] != ':' {
			return Update{}, false
		}
		i = skipBlank(data, i+1)
		name := ""
		switch {
		case strings.EqualFold(key, "_meta"):
			name = "_meta"
		case strings.HasPrefix(key, "_"): // ignored, but still read
		default:
			if name, ok = CanonicalField(key); !ok {
				return Update{}, false
			}
		}
		for _, s := range seen {
			if name != "" && s == name {
				return Update{}, false
			}
		}
		if name != "" {
			seen = append(seen, name)
		}
		if name == "_meta" {
			end, ok := objectEnd(data, i)
			if !ok {
				return Update{}, false
			}
			var m Meta
			if err := json.Unmarshal(data[i:end], &m); err != nil {
				return Update{}, false
			}
			u.Meta, i = &m, end
		} else {
			v, j, ok := plainString(data, i)
			if !ok {
				return Update{}, false
			}
			if name != "" {
				*FieldValue(&u, name) = v
			}
			i = j
		}
		if i = skipBlank(data, i); i >= len(data) {
			return Update{}, false
		}
		if data[i] == '}' {
			return u, skipBlank(data, i+1) == len(data)
		}
		if data[i] != ',' {
			return Update{}, false
		}
		i = skipBlank(data, i+1)
	}
}

// skipBlank returns the index of the first byte of data from i on that is
// not JSON whitespace.
func skipBlank(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// plainString reads the JSON string at data[i] if it holds no escape, no
// control character and only valid UTF-8 (so that its bytes are its
// value), and returns it and the index after it.
func plainString(data []byte, i int) (string, int, bool) {
	if i >= len(data) || data[i] != '"' {
		return "", i, false
	}
	ascii := true
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			b := data[i+1 : j]
			if !ascii && !utf8.Valid(b) {
				return "", i, false
			}
			return string(b), j + 1, true
		case c == '\\' || c < 0x20:
			return "", i, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", i, false
}

// objectEnd returns the index after the JSON object that starts at
// data[i], found by its braces outside strings; whether the object is
// valid JSON is left to its decoder.
func objectEnd(data []byte, i int) (int, bool) {
	if i >= len(data) || data[i] != '{' {
		return i, false
	}
	depth, inString := 0, false
	for j := i; j < len(data); j++ {
		c := data[j]
		switch {
		case inString && c == '\\':
			j++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth--; depth == 0 {
				return j + 1, true
			}
		}
	}
	return i, false
}
