package crdt

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable reason for a rejected input. Codes never change meaning;
// the wire protocol maps them to its own error table.
type Code string

const (
	CodeBadVersion Code = "crdt.bad_version" // encoding version byte unknown
	CodeTruncated  Code = "crdt.truncated"   // input ends early or has trailing bytes
	CodeBadID      Code = "crdt.bad_id"      // malformed identifier
	CodeBadOp      Code = "crdt.bad_op"      // operation inconsistent with itself or the document
	CodeBadText    Code = "crdt.bad_text"    // text not valid Unicode scalar values
	CodeTooLarge   Code = "crdt.too_large"   // over a size limit
	CodeRange      Code = "crdt.range"       // position outside the document
	CodeExhausted  Code = "crdt.exhausted"   // no identifier left between two neighbours
)

// ErrInvalid matches (errors.Is) every *InvalidError.
var ErrInvalid = errors.New("crdt: invalid input")

// InvalidError says why an input (an op, an encoding, a position) was refused. The document is
// unchanged when an operation returns it.
type InvalidError struct {
	Code Code
	Msg  string
}

func (e *InvalidError) Error() string { return fmt.Sprintf("crdt: %s: %s", e.Code, e.Msg) }

// Is makes errors.Is(err, ErrInvalid) true for every InvalidError.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

func invalidf(code Code, format string, args ...any) error {
	return &InvalidError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// CodeOf returns the Code of err, or "" when err is not an *InvalidError.
func CodeOf(err error) Code {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Code
	}
	return ""
}
