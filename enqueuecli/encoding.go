package enqueuecli

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
	xunicode "golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

// Encodings the reader decodes (the values of --encoding, canonical).
const (
	encUTF8    = "utf-8"
	encUTF16LE = "utf-16le"
	encUTF16BE = "utf-16be"
	encGBK     = "gbk"
	encGB18030 = "gb18030"
)

// parseEncoding returns the canonical name of an --encoding value.
func parseEncoding(v string) (string, error) {
	switch strings.ToLower(strings.ReplaceAll(strings.TrimSpace(v), "_", "-")) {
	case "utf-8", "utf8":
		return encUTF8, nil
	case "utf-16", "utf16", "utf-16le", "utf16le", "unicode":
		return encUTF16LE, nil
	case "utf-16be", "utf16be":
		return encUTF16BE, nil
	case "gbk", "gb2312", "cp936", "936":
		return encGBK, nil
	case "gb18030":
		return encGB18030, nil
	}
	return "", usagef("--encoding %q: want utf-8, gbk, gb18030 or utf-16 (utf-16le, utf-16be)", v)
}

// sniffEncoding guesses the encoding of a file from its first bytes: a
// byte-order mark, or the zero bytes of UTF-16 text without one. Anything
// else is read as UTF-8, and every row is checked. It also says how the
// guess was made, for a note to the user ("" for plain UTF-8).
func sniffEncoding(head []byte) (enc, note string) {
	switch {
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}):
		return encUTF16LE, "UTF-16 (little-endian, with a byte-order mark: Excel's \"Unicode text\")"
	case bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		return encUTF16BE, "UTF-16 (big-endian, with a byte-order mark)"
	}
	if len(head) >= 4 {
		var even, odd int
		for i, c := range head {
			if c == 0 {
				if i%2 == 0 {
					even++
				} else {
					odd++
				}
			}
		}
		switch half := len(head) / 2; {
		case odd > half*3/4 && even == 0:
			return encUTF16LE, "UTF-16 (little-endian, no byte-order mark)"
		case even > half*3/4 && odd == 0:
			return encUTF16BE, "UTF-16 (big-endian, no byte-order mark)"
		}
	}
	return encUTF8, ""
}

// decodeReader returns r decoded from enc to UTF-8, without a byte-order
// mark, and with line ends that are a lone CR (old Mac Excel) made LF.
func decodeReader(r io.Reader, enc string) io.Reader {
	return transform.NewReader(decodeText(r, enc), crToLF{})
}

// decodeText returns r decoded from enc to UTF-8, without a byte-order
// mark. Bytes that are not UTF-8 in a UTF-8 file stay as they are, for the
// reader to find; a decoder writes U+FFFD for bytes it cannot decode.
func decodeText(r io.Reader, enc string) io.Reader {
	switch enc {
	case encUTF16LE:
		r = transform.NewReader(r, xunicode.UTF16(xunicode.LittleEndian, xunicode.UseBOM).NewDecoder())
	case encUTF16BE:
		r = transform.NewReader(r, xunicode.UTF16(xunicode.BigEndian, xunicode.UseBOM).NewDecoder())
	case encGBK:
		r = transform.NewReader(r, simplifiedchinese.GBK.NewDecoder())
	case encGB18030:
		r = transform.NewReader(r, simplifiedchinese.GB18030.NewDecoder())
	}
	br := bufio.NewReaderSize(r, 64<<10)
	if b, _ := br.Peek(3); bytes.Equal(b, []byte("\ufeff")) {
		br.Discard(3)
	}
	return br
}

// crToLF turns every CR that is not followed by LF into LF, so that files
// whose lines end in CR alone read line by line. CRLF stays.
type crToLF struct{ transform.NopResetter }

func (crToLF) Transform(dst, src []byte, atEOF bool) (nDst, nSrc int, err error) {
	for nSrc < len(src) {
		if nDst >= len(dst) {
			return nDst, nSrc, transform.ErrShortDst
		}
		c := src[nSrc]
		if c == '\r' {
			if nSrc+1 == len(src) && !atEOF {
				return nDst, nSrc, transform.ErrShortSrc // is an LF next?
			}
			if nSrc+1 == len(src) || src[nSrc+1] != '\n' {
				c = '\n'
			}
		}
		dst[nDst] = c
		nDst++
		nSrc++
	}
	return nDst, nSrc, nil
}

// crOnly reports whether head (UTF-8 or a single-byte-compatible
// encoding) ends its lines with CR alone.
func crOnly(head []byte) bool {
	return bytes.IndexByte(head, '\r') >= 0 && bytes.IndexByte(head, '\n') < 0
}

// encodingError is a file that is not in the encoding it is read as.
type encodingError struct {
	file  string
	line  int
	guess string // what it looks like, as a clause
}

func (e *encodingError) Error() string {
	return fmt.Sprintf("%s:%d: not UTF-8: %s", e.file, e.line, e.guess)
}

// notUTF8 describes text that is not valid UTF-8: what encoding it looks
// like, and what to do.
func notUTF8(file string, line int, b []byte) *encodingError {
	guess := "it is in another encoding; save the file as UTF-8 (Excel: \"CSV UTF-8\"), or pass --encoding gbk, gb18030 or utf-16"
	if d, err := simplifiedchinese.GB18030.NewDecoder().Bytes(b); err == nil && utf8.Valid(d) && !bytes.ContainsRune(d, utf8.RuneError) &&
		bytes.ContainsFunc(d, func(r rune) bool { return unicode.Is(unicode.Han, r) }) {
		guess = "it looks like GBK (Chinese text as Excel and WPS save it on Windows); save the file as \"CSV UTF-8\", or pass --encoding gbk"
	} else if bytes.Count(b, []byte{0}) > len(b)/4 {
		guess = "it looks like UTF-16 without a byte-order mark; pass --encoding utf-16"
	}
	return &encodingError{file: file, line: line, guess: guess}
}
