package schemas

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/palimpsest-editor/palimpsest/schemas/internal/schemagen"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden files under testdata/")

func sampleEvent() Event {
	return Event{
		Type:    EventOp,
		Doc:     "notes-2024_q1",
		Site:    7,
		Counter: 300,
		Author:  "ada@example.org",
		OpID:    "7-300",
		Time:    1_700_000_000_123_456_789,
		Payload: []byte{0x01, 0x02, 0xff},
	}
}

// golden compares got with testdata/name, or rewrites it with -rewrite.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *rewrite {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -rewrite to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s changed: the stored encoding is a contract; bump the version instead\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestGeneratedUpToDate(t *testing.T) {
	schema, err := os.ReadFile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	errs, err := os.ReadFile("errors.json")
	if err != nil {
		t.Fatal(err)
	}
	files, err := schemagen.Generate(schema, errs)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run go generate ./schemas", name)
		}
	}
}

func TestEventBinaryGolden(t *testing.T) {
	e := sampleEvent()
	b, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != EventVersion {
		t.Fatalf("first byte %d, want the version %d", b[0], EventVersion)
	}
	golden(t, "event_v1.hex", []byte(hex.EncodeToString(b)+"\n"))

	// The stored golden bytes decode to the sample: old data stays readable.
	stored, err := os.ReadFile(filepath.Join("testdata", "event_v1.hex"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(stored)))
	if err != nil {
		t.Fatal(err)
	}
	var got Event
	if err := got.UnmarshalBinary(raw); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Errorf("decoded %+v, want %+v", got, e)
	}
}

func TestEventJSONGolden(t *testing.T) {
	e := sampleEvent()
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "event_v1.json", append(b, '\n'))
	var got Event
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Errorf("JSON round trip: got %+v, want %+v", got, e)
	}
}

func TestEventRoundTripEdges(t *testing.T) {
	for _, e := range []Event{
		{Type: EventOp},
		{Type: EventOp, Site: ^uint32(0), Counter: ^uint32(0), Time: -1},
		{Type: EventOp, Time: 1<<63 - 1, Doc: strings.Repeat("d", 128), Author: strings.Repeat("é", 128)},
		{Type: EventOp, Time: -1 << 63, Payload: make([]byte, 70000)},
	} {
		b, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Event
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("binary round trip of %+v gave %+v", e, got)
		}
		j, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got = Event{}
		if err := json.Unmarshal(j, &got); err != nil {
			t.Fatalf("%s: %v", j, err)
		}
		if len(got.Payload) == 0 {
			got.Payload = e.Payload
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("JSON round trip of %s gave %+v", j, got)
		}
	}
}

func TestEventBadBinary(t *testing.T) {
	good, err := (&Event{Type: EventOp, Doc: "d", OpID: "x"}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrBadEvent},
		{"version 0", []byte{0}, ErrUnsupportedVersion},
		{"future version", append([]byte{EventVersion + 1}, good[1:]...), ErrUnsupportedVersion},
		{"truncated", good[:len(good)-1], ErrBadEvent},
		{"trailing", append(append([]byte{}, good...), 0), ErrBadEvent},
		{"zero type", append([]byte{1, 0}, good[2:]...), ErrBadEvent},
		{"unknown type", append([]byte{1, 9}, good[2:]...), ErrBadEvent},
		{"huge length", []byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}, ErrBadEvent},
		{"uint32 overflow", []byte{1, 1, 0, 0x80, 0x80, 0x80, 0x80, 0x10}, ErrBadEvent},
		{"bad utf8 doc", []byte{1, 1, 2, 0xff, 0xfe, 0, 0, 0, 0, 0, 0}, ErrBadEvent},
		{"doc too long", append(append([]byte{1, 1, 129, 1}, bytes.Repeat([]byte{'a'}, 129)...), 0, 0, 0, 0, 0, 0), ErrBadEvent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := sampleEvent()
			before := e
			err := e.UnmarshalBinary(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var se *Error
			if !errors.As(err, &se) || se.Code != tc.want.(*Error).Code {
				t.Fatalf("errors.As: %v", err)
			}
			if !reflect.DeepEqual(e, before) {
				t.Errorf("failed decode changed the event")
			}
		})
	}
}

func TestEventBadJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{`{"v":2,"type":"op"}`, ErrUnsupportedVersion},
		{`{"v":0,"type":"op"}`, ErrUnsupportedVersion},
		{`{"v":1,"type":"nope"}`, ErrBadEvent},
		{`{"v":1}`, ErrBadEvent},
		{`{"v":1,"type":"op","extra":1}`, ErrBadEvent},
		{`{"v":1,"type":"op","time":"yesterday"}`, ErrBadEvent},
		{`{"v":1,"type":"op"} {}`, ErrBadEvent},
		{`{"v":1,"type":"op","site":-1}`, ErrBadEvent},
	} {
		var e Event
		if err := e.UnmarshalJSON([]byte(tc.in)); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.in, err, tc.want)
		}
	}
}

func TestEncodeRejectsInvalid(t *testing.T) {
	for _, e := range []Event{
		{},
		{Type: EventOp, Doc: strings.Repeat("x", 129)},
		{Type: EventOp, Author: "\xff"},
	} {
		if _, err := e.MarshalBinary(); !errors.Is(err, ErrBadEvent) {
			t.Errorf("%+v: got %v, want ErrBadEvent", e, err)
		}
		if _, err := json.Marshal(e); !errors.Is(err, ErrBadEvent) {
			t.Errorf("JSON %+v: got %v, want ErrBadEvent", e, err)
		}
	}
}

func TestErrors(t *testing.T) {
	err := Errorf(CodeWrongSequence, errors.New("cause"), "doc %q: expected 3, last is 5", "d")
	wrapped := errors.Join(errors.New("other"), err)
	if !errors.Is(wrapped, ErrWrongSequence) || errors.Is(wrapped, ErrDuplicate) {
		t.Errorf("errors.Is by code is wrong for %v", wrapped)
	}
	if CodeOf(wrapped) != CodeWrongSequence || CodeOf(errors.New("x")) != 0 {
		t.Errorf("CodeOf")
	}
	if got := err.Error(); got != `wrong_sequence: doc "d": expected 3, last is 5: cause` {
		t.Errorf("Error() = %q", got)
	}
	seen := map[string]bool{}
	for _, c := range Codes() {
		if seen[c.String()] || c.Description() == "" || c.HTTPStatus() < 400 {
			t.Errorf("code %d: text %q repeated or info missing", c, c)
		}
		seen[c.String()] = true
	}
}
