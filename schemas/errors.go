package schemas

import (
	"errors"
	"fmt"
	"strconv"
)

// Code is a stable error code from errors.json. Codes travel on the wire (in
// the gateway's error frames and HTTP bodies) and never change meaning.
type Code uint16

// String returns the code's stable text, such as "wrong_sequence".
func (c Code) String() string {
	if i, ok := codeInfo[c]; ok {
		return i.text
	}
	return "code_" + strconv.Itoa(int(c))
}

// Description returns the table's one-line description of the code.
func (c Code) Description() string { return codeInfo[c].description }

// HTTPStatus returns the HTTP status an API answers the code with (500 for an
// unknown code).
func (c Code) HTTPStatus() int {
	if i, ok := codeInfo[c]; ok && i.http != 0 {
		return i.http
	}
	return 500
}

// Error is a typed error with a stable Code. Msg says what failed and with
// which input; Err is the cause, if any. errors.Is(err, ErrX) holds for any
// *Error with ErrX's code anywhere in err's chain, so callers test codes with
// the generated sentinels and read details with errors.As.
type Error struct {
	Code Code
	Msg  string
	Err  error
}

// Error returns "code: message: cause".
func (e *Error) Error() string {
	s := e.Code.String()
	if e.Msg != "" {
		s += ": " + e.Msg
	} else {
		s += ": " + e.Code.Description()
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Errorf returns an *Error with code, cause err (may be nil) and a message.
func Errorf(code Code, err error, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...), Err: err}
}

func errorf(code Code, err error, format string, args ...any) error {
	return Errorf(code, err, format, args...)
}

// CodeOf returns the code of the first *Error in err's chain, or 0 when there
// is none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}
