// Package schemas is the one versioned contract of Palimpsest's events and
// error codes. The Go types are generated from two definition files,
// schema.json and errors.json, by `go generate ./schemas`; nothing else
// defines an event's fields.
//
// An event's binary form starts with its version byte, so stored history stays
// readable as the schema grows (fields are only ever appended, behind a new
// version). The JSON form is a view for humans and tools:
//
//	e := schemas.Event{Type: schemas.EventOp, Doc: "notes", Site: 7, Counter: 42,
//		OpID: "7-42", Time: time.Now().UnixNano(), Payload: crdtOp}
//	b, err := e.MarshalBinary()       // b[0] == schemas.EventVersion
//	var back schemas.Event
//	err = back.UnmarshalBinary(b)     // *schemas.Error on bad input, never a panic
//	j, err := json.Marshal(back)      // {"v":1,"type":"op","doc":"notes",...}
//
// Every error this package returns is an *Error with a stable Code from
// errors.json; test for one with errors.Is(err, schemas.ErrBadEvent) and read
// its details with errors.As.
package schemas
