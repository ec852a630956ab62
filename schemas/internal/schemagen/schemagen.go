// Package schemagen generates the Go code of package schemas from its two
// definition files, schema.json (enums and messages) and errors.json (error
// codes). It is the only writer of schemas/*_gen.go; a test in package schemas
// regenerates in memory and fails when the committed output is stale.
package schemagen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/format"
	"sort"
	"strings"
)

// Schema is the parsed schema.json.
type Schema struct {
	Comment  string    `json:"comment"`
	Enums    []Enum    `json:"enums"`
	Messages []Message `json:"messages"`
}

// Enum is a named uint8 with a closed set of values.
type Enum struct {
	Name   string      `json:"name"`
	File   string      `json:"file"`
	Doc    string      `json:"doc"`
	Values []EnumValue `json:"values"`
}

// EnumValue is one value of an Enum; Text is its JSON spelling.
type EnumValue struct {
	Name  string `json:"name"`
	Value uint8  `json:"value"`
	Text  string `json:"text"`
	Doc   string `json:"doc"`
}

// Message is a versioned record with a binary and a JSON encoding.
type Message struct {
	Name    string  `json:"name"`
	File    string  `json:"file"`
	Version int     `json:"version"`
	Doc     string  `json:"doc"`
	Fields  []Field `json:"fields"`
}

// Field is one field of a Message. Type is one of bool, uint32, uint64, time,
// string, bytes, []bytes (a list of byte strings) or the name of an Enum. Max
// bounds a string's length in bytes, or a list's number of items.
type Field struct {
	Name  string `json:"name"`
	JSON  string `json:"json"`
	Type  string `json:"type"`
	Max   int    `json:"max"`
	Since int    `json:"since"`
	Doc   string `json:"doc"`
}

// Errors is the parsed errors.json.
type Errors struct {
	Comment string      `json:"comment"`
	Errors  []ErrorCode `json:"errors"`
}

// ErrorCode is one row of the error table.
type ErrorCode struct {
	Name        string `json:"name"`
	Code        int    `json:"code"`
	Text        string `json:"text"`
	HTTP        int    `json:"http"`
	Description string `json:"description"`
}

// Generate returns the generated files, by file name, for the given
// definitions. It validates the definitions and fails on anything it would
// otherwise have to guess.
func Generate(schemaJSON, errorsJSON []byte) (map[string][]byte, error) {
	var s Schema
	if err := strictUnmarshal(schemaJSON, &s); err != nil {
		return nil, fmt.Errorf("schema.json: %w", err)
	}
	var e Errors
	if err := strictUnmarshal(errorsJSON, &e); err != nil {
		return nil, fmt.Errorf("errors.json: %w", err)
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("schema.json: %w", err)
	}
	if err := e.check(); err != nil {
		return nil, fmt.Errorf("errors.json: %w", err)
	}
	out := map[string][]byte{}
	gens := map[string]func() []byte{"errors_gen.go": e.generate}
	for _, file := range s.files() {
		gens[file+"_gen.go"] = func() []byte { return s.generate(file) }
	}
	for name, gen := range gens {
		src, err := format.Source(gen())
		if err != nil {
			return nil, fmt.Errorf("%s: gofmt: %w", name, err)
		}
		out[name] = src
	}
	return out, nil
}

func strictUnmarshal(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

var scalarTypes = map[string]string{
	"bool":    "bool",
	"[]bytes": "[][]byte",
	"uint32":  "uint32",
	"uint64":  "uint64",
	"time":    "int64",
	"string":  "string",
	"bytes":   "[]byte",
}

func (s *Schema) check() error {
	enums := map[string]bool{}
	for _, e := range s.Enums {
		if e.File != "" && !validFile(e.File) {
			return fmt.Errorf("enum %s: file %q must be lower-case letters", e.Name, e.File)
		}
		if e.Name == "" || len(e.Values) == 0 {
			return fmt.Errorf("enum %q needs a name and values", e.Name)
		}
		seen := map[uint8]bool{0: true}
		for _, v := range e.Values {
			if seen[v.Value] {
				return fmt.Errorf("enum %s: value %d is zero or repeated", e.Name, v.Value)
			}
			seen[v.Value] = true
		}
		enums[e.Name] = true
	}
	for _, m := range s.Messages {
		if m.File != "" && !validFile(m.File) {
			return fmt.Errorf("message %s: file %q must be lower-case letters", m.Name, m.File)
		}
		if m.Version < 1 || m.Version > 255 {
			return fmt.Errorf("message %s: version %d out of 1..255", m.Name, m.Version)
		}
		last := 1
		for _, f := range m.Fields {
			if _, ok := scalarTypes[f.Type]; !ok && !enums[f.Type] {
				return fmt.Errorf("message %s field %s: unknown type %q", m.Name, f.Name, f.Type)
			}
			if f.Since < last || f.Since > m.Version {
				return fmt.Errorf("message %s field %s: since %d must be in %d..%d (fields are only appended)", m.Name, f.Name, f.Since, last, m.Version)
			}
			last = f.Since
			if f.JSON == "" {
				return fmt.Errorf("message %s field %s: no json name", m.Name, f.Name)
			}
		}
	}
	return nil
}

func validFile(f string) bool {
	for _, c := range f {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return f != "" && f != "errors"
}

func (e *Errors) check() error {
	codes := map[int]bool{}
	for _, r := range e.Errors {
		if r.Code <= 0 || r.Code > 65535 || codes[r.Code] || r.Name == "" || r.Text == "" {
			return fmt.Errorf("error %q: code %d must be unique in 1..65535, name and text set", r.Name, r.Code)
		}
		codes[r.Code] = true
	}
	return nil
}

const header = "// Code generated by schemagen from %s; DO NOT EDIT.\n\npackage schemas\n\n"

type w struct{ bytes.Buffer }

func (b *w) p(format string, args ...any) { fmt.Fprintf(&b.Buffer, format+"\n", args...) }

func doc(b *w, text string) {
	if text != "" {
		b.p("// %s", text)
	}
}

// files returns the generated files' base names: "events" (the default, for
// definitions without a file) and every file a definition names.
func (s *Schema) files() []string {
	seen := map[string]bool{"events": true}
	out := []string{"events"}
	add := func(f string) {
		if f != "" && !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	for _, e := range s.Enums {
		add(e.File)
	}
	for _, m := range s.Messages {
		add(m.File)
	}
	return out
}

func fileOf(f string) string {
	if f == "" {
		return "events"
	}
	return f
}

// generate returns the code of the definitions that go into file.
func (s *Schema) generate(file string) []byte {
	var b w
	fmt.Fprintf(&b, header, "schema.json")
	imports := []string{"\"encoding/json\""}
	hasEnum, hasMsg := false, false
	for _, e := range s.Enums {
		hasEnum = hasEnum || fileOf(e.File) == file
	}
	for _, m := range s.Messages {
		hasMsg = hasMsg || fileOf(m.File) == file
	}
	if hasMsg {
		imports = append([]string{"\"encoding/binary\""}, imports...)
	}
	if hasEnum {
		imports = append(imports, "\"strconv\"")
	}
	if hasEnum || hasMsg {
		b.p("import (\n%s\n)\n", strings.Join(imports, "\n"))
	}
	enums := map[string]bool{}
	for _, e := range s.Enums {
		enums[e.Name] = true
		if fileOf(e.File) == file {
			genEnum(&b, e)
		}
	}
	for _, m := range s.Messages {
		if fileOf(m.File) == file {
			genMessage(&b, m, enums)
		}
	}
	return b.Bytes()
}

func genEnum(b *w, e Enum) {
	doc(b, e.Doc)
	b.p("type %s uint8\n", e.Name)
	b.p("const (")
	for _, v := range e.Values {
		doc(b, v.Doc)
		b.p("%s %s = %d", v.Name, e.Name, v.Value)
	}
	b.p(")\n")
	b.p("// String returns the JSON spelling of t, or %s(n) for an unknown value.", e.Name)
	b.p("func (t %s) String() string {\nswitch t {", e.Name)
	for _, v := range e.Values {
		b.p("case %s:\nreturn %q", v.Name, v.Text)
	}
	b.p("}\nreturn \"%s(\" + strconv.Itoa(int(t)) + \")\"\n}\n", e.Name)
	b.p("// Valid reports whether t is one of the defined values.")
	b.p("func (t %s) Valid() bool {\nswitch t {", e.Name)
	names := make([]string, len(e.Values))
	for i, v := range e.Values {
		names[i] = v.Name
	}
	b.p("case %s:\nreturn true\n}\nreturn false\n}\n", strings.Join(names, ", "))
	b.p("// MarshalText returns the JSON spelling of t; an unknown value is a %s error.", "CodeBadEvent")
	b.p("func (t %s) MarshalText() ([]byte, error) {\nif !t.Valid() {\nreturn nil, errorf(CodeBadEvent, nil, \"%s %%d has no name\", uint8(t))\n}\nreturn []byte(t.String()), nil\n}\n", e.Name, e.Name)
	b.p("// UnmarshalText parses the JSON spelling of a %s.", e.Name)
	b.p("func (t *%s) UnmarshalText(text []byte) error {\nswitch string(text) {", e.Name)
	for _, v := range e.Values {
		b.p("case %q:\n*t = %s\nreturn nil", v.Text, v.Name)
	}
	b.p("}\nreturn errorf(CodeBadEvent, nil, \"unknown %s %%q\", text)\n}\n", e.Name)
}

func goType(f Field, enums map[string]bool) string {
	if enums[f.Type] {
		return f.Type
	}
	return scalarTypes[f.Type]
}

func genMessage(b *w, m Message, enums map[string]bool) {
	n := m.Name
	b.p("// %sVersion is the version %s is encoded with. Decoders accept versions 1 to %sVersion.", n, n, n)
	b.p("const %sVersion = %d\n", n, m.Version)
	doc(b, m.Doc)
	b.p("type %s struct {", n)
	for _, f := range m.Fields {
		doc(b, f.Doc)
		b.p("%s %s", f.Name, goType(f, enums))
	}
	b.p("}\n")

	// Validate.
	b.p("// Validate reports the first field of m that cannot be encoded, as a CodeBadEvent error.")
	b.p("func (m *%s) Validate() error {", n)
	for _, f := range m.Fields {
		switch {
		case enums[f.Type]:
			b.p("if !m.%s.Valid() {\nreturn errorf(CodeBadEvent, nil, \"%s.%s: invalid value %%d\", uint8(m.%s))\n}", f.Name, n, f.Name, f.Name)
		case f.Type == "string":
			b.p("if err := checkString(%q, m.%s, %d); err != nil {\nreturn err\n}", n+"."+f.Name, f.Name, f.Max)
		case f.Type == "[]bytes" && f.Max > 0:
			b.p("if len(m.%s) > %d {\nreturn errorf(CodeBadEvent, nil, \"%s.%s: %%d items, at most %d\", len(m.%s))\n}", f.Name, f.Max, n, f.Name, f.Max, f.Name)
		}
	}
	b.p("return nil\n}\n")

	// Encode.
	b.p("// AppendBinary validates m and appends its binary encoding, version byte first, to buf.")
	b.p("func (m *%s) AppendBinary(buf []byte) ([]byte, error) {", n)
	b.p("if err := m.Validate(); err != nil {\nreturn buf, err\n}")
	b.p("buf = append(buf, %sVersion)", n)
	for _, f := range m.Fields {
		switch {
		case enums[f.Type]:
			b.p("buf = append(buf, byte(m.%s))", f.Name)
		case f.Type == "bool":
			b.p("buf = appendBool(buf, m.%s)", f.Name)
		case f.Type == "[]bytes":
			b.p("buf = appendList(buf, m.%s)", f.Name)
		case f.Type == "uint32", f.Type == "uint64":
			b.p("buf = binary.AppendUvarint(buf, uint64(m.%s))", f.Name)
		case f.Type == "time":
			b.p("buf = binary.AppendVarint(buf, m.%s)", f.Name)
		case f.Type == "string":
			b.p("buf = appendString(buf, m.%s)", f.Name)
		case f.Type == "bytes":
			b.p("buf = appendBytes(buf, m.%s)", f.Name)
		}
	}
	b.p("return buf, nil\n}\n")
	b.p("// MarshalBinary returns m's binary encoding, version byte first.")
	b.p("func (m *%s) MarshalBinary() ([]byte, error) {\nreturn m.AppendBinary(nil)\n}\n", n)

	// Decode.
	b.p("// UnmarshalBinary decodes any version from 1 to %sVersion into m. An unknown", n)
	b.p("// version is a CodeUnsupportedVersion error; truncated, trailing or invalid bytes")
	b.p("// are a CodeBadEvent error. On error m is unchanged. Byte slices in m do not alias data.")
	b.p("func (m *%s) UnmarshalBinary(data []byte) error {", n)
	b.p("d := decoder{buf: data, what: %q}", n)
	b.p("v := d.version(%sVersion)", n)
	b.p("var x %s", n)
	since := 0
	for _, f := range m.Fields {
		if f.Since != since {
			if since != 0 {
				b.p("}")
			}
			b.p("if v >= %d {", f.Since)
			since = f.Since
		}
		switch {
		case enums[f.Type]:
			b.p("x.%s = %s(d.byte())", f.Name, f.Type)
		case f.Type == "bool":
			b.p("x.%s = d.bool()", f.Name)
		case f.Type == "[]bytes":
			b.p("x.%s = d.list()", f.Name)
		case f.Type == "uint32":
			b.p("x.%s = d.uint32()", f.Name)
		case f.Type == "uint64":
			b.p("x.%s = d.uvarint()", f.Name)
		case f.Type == "time":
			b.p("x.%s = d.varint()", f.Name)
		case f.Type == "string":
			b.p("x.%s = d.string()", f.Name)
		case f.Type == "bytes":
			b.p("x.%s = d.bytes()", f.Name)
		}
	}
	if since != 0 {
		b.p("}")
	}
	b.p("if err := d.end(); err != nil {\nreturn err\n}")
	b.p("if err := x.Validate(); err != nil {\nreturn err\n}")
	b.p("*m = x\nreturn nil\n}\n")

	// JSON view.
	lower := strings.ToLower(n[:1]) + n[1:]
	b.p("// %sJSON is the JSON view of %s: times as RFC 3339 strings, bytes as base64.", lower, n)
	b.p("type %sJSON struct {", lower)
	b.p("Version int `json:\"v\"`")
	for _, f := range m.Fields {
		t := goType(f, enums)
		if f.Type == "time" {
			t = "jsonTime"
		}
		b.p("%s %s `json:%q`", f.Name, t, f.JSON)
	}
	b.p("}\n")
	b.p("// MarshalJSON returns the JSON view of m, for humans and tools; it is not the")
	b.p("// stored form. It fails like AppendBinary on a value that does not validate.")
	b.p("func (m %s) MarshalJSON() ([]byte, error) {", n)
	b.p("if err := m.Validate(); err != nil {\nreturn nil, err\n}")
	b.p("return json.Marshal(%sJSON{", lower)
	b.p("Version: %sVersion,", n)
	for _, f := range m.Fields {
		if f.Type == "time" {
			b.p("%s: jsonTime(m.%s),", f.Name, f.Name)
		} else {
			b.p("%s: m.%s,", f.Name, f.Name)
		}
	}
	b.p("})\n}\n")
	b.p("// UnmarshalJSON parses the JSON view of m. Unknown fields, an unknown \"v\" and")
	b.p("// invalid values are errors (CodeBadEvent or CodeUnsupportedVersion); on error m is unchanged.")
	b.p("func (m *%s) UnmarshalJSON(data []byte) error {", n)
	b.p("var j %sJSON", lower)
	b.p("if err := strictJSON(data, &j); err != nil {\nreturn errorf(CodeBadEvent, err, \"%s: bad JSON\")\n}", n)
	b.p("if j.Version < 1 || j.Version > %sVersion {\nreturn errorf(CodeUnsupportedVersion, nil, \"%s: version %%d, want 1..%%d\", j.Version, %sVersion)\n}", n, n, n)
	b.p("x := %s{", n)
	for _, f := range m.Fields {
		if f.Type == "time" {
			b.p("%s: int64(j.%s),", f.Name, f.Name)
		} else {
			b.p("%s: j.%s,", f.Name, f.Name)
		}
	}
	b.p("}")
	b.p("if err := x.Validate(); err != nil {\nreturn err\n}")
	b.p("*m = x\nreturn nil\n}\n")
}

func (e *Errors) generate() []byte {
	var b w
	fmt.Fprintf(&b, header, "errors.json")
	rows := append([]ErrorCode(nil), e.Errors...)
	sort.Slice(rows, func(i, j int) bool { return rows[i].Code < rows[j].Code })
	b.p("// The stable error codes. A code is never renumbered or reused.")
	b.p("const (")
	for _, r := range rows {
		b.p("// Code%s: %s.", r.Name, r.Description)
		b.p("Code%s Code = %d", r.Name, r.Code)
	}
	b.p(")\n")
	b.p("// Sentinels for errors.Is: an *Error matches the sentinel of its code.")
	b.p("var (")
	for _, r := range rows {
		b.p("Err%s = &Error{Code: Code%s}", r.Name, r.Name)
	}
	b.p(")\n")
	b.p("var codeInfo = map[Code]struct {\ntext, description string\nhttp int\n}{")
	for _, r := range rows {
		b.p("Code%s: {%q, %q, %d},", r.Name, r.Text, r.Description, r.HTTP)
	}
	b.p("}\n")
	b.p("// Codes returns every defined code in ascending order.")
	b.p("func Codes() []Code {\nreturn []Code{")
	for _, r := range rows {
		b.p("Code%s,", r.Name)
	}
	b.p("}\n}")
	return b.Bytes()
}
