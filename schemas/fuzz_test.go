package schemas

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzEventBinary: decoding any bytes never panics, errors are typed, and
// whatever decodes re-encodes to bytes that decode to the same event.
func FuzzEventBinary(f *testing.F) {
	e := sampleEvent()
	b, _ := e.MarshalBinary()
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, data []byte) {
		var e Event
		if err := e.UnmarshalBinary(data); err != nil {
			if CodeOf(err) != CodeBadEvent && CodeOf(err) != CodeUnsupportedVersion {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		again, err := e.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded event does not encode: %v", err)
		}
		var e2 Event
		if err := e2.UnmarshalBinary(again); err != nil || !reflect.DeepEqual(e, e2) {
			t.Fatalf("re-encode round trip: %v %+v %+v", err, e, e2)
		}
	})
}

// FuzzEventJSON: the JSON view's decoder never panics and round-trips.
func FuzzEventJSON(f *testing.F) {
	b, _ := json.Marshal(sampleEvent())
	f.Add(b)
	f.Add([]byte(`{"v":1,"type":"op","time":"1970-01-01T00:00:00Z"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var e Event
		if err := e.UnmarshalJSON(data); err != nil {
			if CodeOf(err) != CodeBadEvent && CodeOf(err) != CodeUnsupportedVersion {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		again, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("decoded event does not encode: %v", err)
		}
		var e2 Event
		if err := json.Unmarshal(again, &e2); err != nil {
			t.Fatalf("%s: %v", again, err)
		}
		if len(e.Payload) == 0 && len(e2.Payload) == 0 {
			e.Payload, e2.Payload = nil, nil
		}
		if !reflect.DeepEqual(e, e2) {
			t.Fatalf("JSON round trip: %+v %+v", e, e2)
		}
	})
}
