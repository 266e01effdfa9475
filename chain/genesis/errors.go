package genesis

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Error is one problem of a genesis file, located by line and column (1-based,
// columns counted in characters) and by the path of the field, e.g.
// "validators[1].power". Line is 0 when the document was not parsed from a file.
type Error struct {
	File   string
	Line   int
	Column int
	Field  string
	Msg    string

	off int // byte offset in the file, -1 if unknown
}

// Error formats e as "file:line:col: field: msg", leaving out what is unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:%d:", e.Line, e.Column)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in a genesis file, in file order.
type ErrorList []*Error

// Error joins the errors, one per line.
func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// MaxErrors is the most errors Parse or Validate report; the last one then
// says that more were left out.
const MaxErrors = 100

// finish orders l by position (errors without one keep their order, last), cuts
// it to MaxErrors and fills in the lines and columns.
func (s *source) finish(l ErrorList) ErrorList {
	slices.SortStableFunc(l, func(a, b *Error) int { return cmp.Compare(a.key(), b.key()) })
	if len(l) > MaxErrors {
		more := len(l) - MaxErrors + 1
		l = append(l[:MaxErrors-1:MaxErrors-1], &Error{File: s.file, Msg: fmt.Sprintf("and %d more errors", more), off: -1})
	}
	for _, e := range l {
		if e.off >= 0 && s.data != nil {
			e.Line, e.Column = s.lineCol(e.off)
		}
	}
	return l
}

func (e *Error) key() int {
	if e.off < 0 {
		return math.MaxInt
	}
	return e.off
}

// source locates fields of a parsed file: it maps field paths to byte offsets
// and offsets to line:column.
type source struct {
	file  string
	data  []byte
	pos   map[string]int // path -> offset of its key (members) or its first byte (elements, root)
	spans []span
	lines []int // offsets of the line starts, computed on first use
}

// span is the extent of one field: from its key (or first byte) to the end of its value.
type span struct {
	path       string
	start, end int
}

// lineCol converts a byte offset into a 1-based line and character column.
func (s *source) lineCol(off int) (int, int) {
	off = min(max(off, 0), len(s.data))
	if s.lines == nil {
		s.lines = []int{0}
		for i, c := range s.data {
			if c == '\n' {
				s.lines = append(s.lines, i+1)
			}
		}
	}
	// The line is the last one starting at or before off.
	i, found := slices.BinarySearch(s.lines, off)
	if !found {
		i--
	}
	return i + 1, utf8.RuneCount(s.data[s.lines[i]:off]) + 1
}

// errAt returns an error located at byte offset off; finish fills in its line.
func (s *source) errAt(off int, field, format string, args ...any) *Error {
	e := &Error{File: s.file, Field: field, Msg: fmt.Sprintf(format, args...), off: off}
	if s.data == nil {
		e.off = -1
	}
	return e
}

// errField returns an error located at field path, or at the nearest enclosing
// field the file has when path itself is absent (a missing field).
func (s *source) errField(path, format string, args ...any) *Error {
	return s.errAt(s.offset(path), path, format, args...)
}

func (s *source) offset(path string) int {
	for {
		if off, ok := s.pos[path]; ok {
			return off
		}
		if path == "" {
			return 0
		}
		path = parentPath(path)
	}
}

// parentPath strips the last component of a path: ".name", "[3]" or "[\"key\"]".
func parentPath(p string) string {
	if strings.HasSuffix(p, `"]`) {
		if i := strings.LastIndex(p, `["`); i >= 0 {
			return p[:i]
		}
	}
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

func memberPath(parent, key string, structField bool) string {
	if structField {
		if parent == "" {
			return key
		}
		return parent + "." + key
	}
	return parent + "[" + strconv.Quote(key) + "]"
}

// fieldAt returns the innermost field whose span holds offset off.
func (s *source) fieldAt(off int) (string, int) {
	best, bestStart, bestLen := "", 0, -1
	for _, sp := range s.spans {
		if sp.start < off && off <= sp.end && (bestLen < 0 || sp.end-sp.start < bestLen) {
			best, bestStart, bestLen = sp.path, sp.start, sp.end-sp.start
		}
	}
	return best, bestStart
}

// maxDepth bounds the nesting of a genesis file.
const maxDepth = 64

// walker reads a file's JSON tokens once, recording where each field is and
// checking, against the Go type the field decodes into, what encoding/json would
// accept silently or report only once: unknown fields (matched exactly, not
// case-insensitively), duplicate keys, and values of the wrong type.
type walker struct {
	src  *source
	dec  *json.Decoder
	errs ErrorList
}

// scan walks data, which must be syntactically valid JSON, as a value of type t.
func scan(src *source, t reflect.Type) ErrorList {
	w := &walker{src: src, dec: json.NewDecoder(bytes.NewReader(src.data))}
	w.dec.UseNumber()
	if err := w.value("", t, 0); err != nil {
		w.errs = append(w.errs, err)
		return w.errs
	}
	if _, err := w.dec.Token(); err != io.EOF {
		w.errs = append(w.errs, src.errAt(w.next(), "", "unexpected data after the top-level object"))
	}
	return w.errs
}

// next returns the offset of the next token: the decoder's position, past the
// white space and the ':' or ',' that separate tokens.
func (w *walker) next() int {
	off := int(w.dec.InputOffset())
	for off < len(w.src.data) {
		switch w.src.data[off] {
		case ' ', '\t', '\r', '\n', ':', ',':
			off++
			continue
		}
		break
	}
	return off
}

// value walks one value of type t (nil: any type) at path. It returns an error
// only when the walk cannot go on; problems of the value are added to w.errs.
func (w *walker) value(path string, t reflect.Type, depth int) *Error {
	for t != nil && t.Kind() == reflect.Pointer { // an optional section: null or its value
		t = t.Elem()
	}
	start := w.next()
	if depth > maxDepth {
		return w.src.errAt(start, path, "nested more than %d levels deep", maxDepth)
	}
	tok, err := w.dec.Token()
	if err != nil {
		return w.src.errAt(start, path, "%v", err)
	}
	if path == "" {
		w.src.pos[""] = start
	}
	bad := func(got string) {
		w.errs = append(w.errs, w.src.errAt(start, path, "want %s, got %s", describe(t), got))
	}
	switch tok := tok.(type) {
	case json.Delim:
		switch tok {
		case '{':
			var fields map[string]reflect.Type
			var elem reflect.Type
			switch {
			case t == nil:
			case t.Kind() == reflect.Struct:
				fields = jsonFields(t)
			case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
				elem = t.Elem()
			default:
				bad("an object")
				t = nil
			}
			seen := map[string]bool{}
			for w.dec.More() {
				koff := w.next()
				ktok, err := w.dec.Token()
				if err != nil {
					return w.src.errAt(koff, path, "%v", err)
				}
				key, _ := ktok.(string)
				child := memberPath(path, key, t != nil && t.Kind() == reflect.Struct)
				ct := elem
				if fields != nil {
					var ok bool
					if ct, ok = fields[key]; !ok {
						w.errs = append(w.errs, w.src.errAt(koff, child, "unknown field %q", key))
					}
				}
				if seen[key] {
					w.errs = append(w.errs, w.src.errAt(koff, child, "duplicate key %q", key))
				} else {
					w.src.pos[child] = koff
				}
				seen[key] = true
				if err := w.value(child, ct, depth+1); err != nil {
					return err
				}
				w.src.spans = append(w.src.spans, span{child, koff, int(w.dec.InputOffset())})
			}
		case '[':
			var elem reflect.Type
			switch {
			case t == nil:
			case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
				elem = t.Elem()
			default:
				bad("an array")
			}
			for i := 0; w.dec.More(); i++ {
				child := path + "[" + strconv.Itoa(i) + "]"
				w.src.pos[child] = w.next()
				if err := w.value(child, elem, depth+1); err != nil {
					return err
				}
				w.src.spans = append(w.src.spans, span{child, w.src.pos[child], int(w.dec.InputOffset())})
			}
		}
		if _, err := w.dec.Token(); err != nil { // the closing delimiter
			return w.src.errAt(w.next(), path, "%v", err)
		}
	case nil: // null leaves any field at its zero value
	case string:
		if t != nil && t.Kind() != reflect.String {
			if len(tok) > 40 {
				tok = tok[:37] + "..."
			}
			bad("the string " + strconv.Quote(tok))
		}
	case bool:
		if t != nil && t.Kind() != reflect.Bool {
			bad("a boolean")
		}
	case json.Number:
		if t == nil {
			break
		}
		var err error
		switch t.Kind() {
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			_, err = strconv.ParseUint(string(tok), 10, t.Bits())
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			_, err = strconv.ParseInt(string(tok), 10, t.Bits())
		case reflect.Float32, reflect.Float64:
		default:
			err = errors.New("not a number")
		}
		if err != nil {
			bad("the number " + string(tok))
		}
	}
	return nil
}

// describe names what a JSON value of Go type t must look like.
func describe(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in 0.." + strconv.FormatUint(1<<t.Bits()-1, 10)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return fmt.Sprintf("an integer in %d..%d", -1<<(t.Bits()-1), 1<<(t.Bits()-1)-1)
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}

// jsonFields maps the JSON names of struct t's exported fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	return m
}

// syntaxError converts an encoding/json syntax error into a located Error.
func (s *source) syntaxError(se *json.SyntaxError) *Error {
	off := int(se.Offset) - 1 // the offending byte is the last one read
	if strings.Contains(se.Error(), "unexpected end") {
		off = int(se.Offset)
	}
	return s.errAt(off, "", "syntax error: %s", strings.TrimPrefix(se.Error(), "json: "))
}

// decodeError converts an error of encoding/json's Decode into a located Error.
func (s *source) decodeError(err error) *Error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return s.syntaxError(se)
	case errors.As(err, &te):
		path, start := s.fieldAt(int(te.Offset))
		if path == "" {
			start = int(te.Offset)
		}
		return s.errAt(start, path, "want %s, got %s", describe(te.Type), te.Value)
	}
	return s.errAt(0, "", "%s", strings.TrimPrefix(err.Error(), "json: "))
}
