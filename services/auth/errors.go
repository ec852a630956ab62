package auth

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is a stable error code of this package, such as "auth.expired". Codes
// travel to clients (gateway error frames, HTTP bodies) and never change
// meaning; new ones are added, old ones are never reused.
type Code string

// The codes. Every error this package returns carries one of them.
const (
	// CodeMissingToken: the request or message carries no token.
	CodeMissingToken Code = "auth.missing_token"
	// CodeTokenInURL: a token was offered in the URL's query, which is
	// refused whatever else the request carries.
	CodeTokenInURL Code = "auth.token_in_url"
	// CodeMalformed: not a compact JWS, undecodable header or claims, a
	// claim of the wrong type or shape, an unsupported "crit" header, or a
	// token longer than MaxTokenBytes.
	CodeMalformed Code = "auth.malformed"
	// CodeAlgNotAllowed: the header's alg is not in the verifier's
	// allow-list ("none" never is; HS256 only with Config.DevHS256Secret).
	CodeAlgNotAllowed Code = "auth.alg_not_allowed"
	// CodeUnknownKey: no configured key fits the token's kid and alg.
	CodeUnknownKey Code = "auth.unknown_key"
	// CodeBadSignature: the signature does not verify.
	CodeBadSignature Code = "auth.bad_signature"
	// CodeExpired: exp (plus the leeway) has passed.
	CodeExpired Code = "auth.expired"
	// CodeNotYetValid: nbf or iat lies in the future (beyond the leeway).
	CodeNotYetValid Code = "auth.not_yet_valid"
	// CodeMissingClaim: a required claim (exp, sub) is absent or empty.
	CodeMissingClaim Code = "auth.missing_claim"
	// CodeBadIssuer: Config.Issuer is set and iss differs or is absent.
	CodeBadIssuer Code = "auth.bad_issuer"
	// CodeBadAudience: Config.Audience is set and aud does not contain it.
	CodeBadAudience Code = "auth.bad_audience"
	// CodeForbidden: the token is valid but does not grant the access asked.
	CodeForbidden Code = "auth.forbidden"
	// CodeBadConfig: the verifier's configuration or key material is
	// unusable, or a JWKS URL cannot be fetched (a server-side problem, not
	// the client's).
	CodeBadConfig Code = "auth.bad_config"
)

// HTTPStatus returns the status an HTTP API answers the code with: 401 for
// a missing or unacceptable token, 400 for a token in the URL, 403 for
// forbidden, 500 for a bad configuration or an unknown code.
func (c Code) HTTPStatus() int {
	switch c {
	case CodeTokenInURL:
		return http.StatusBadRequest
	case CodeForbidden:
		return http.StatusForbidden
	case CodeMissingToken, CodeMalformed, CodeAlgNotAllowed, CodeUnknownKey,
		CodeBadSignature, CodeExpired, CodeNotYetValid, CodeMissingClaim,
		CodeBadIssuer, CodeBadAudience:
		return http.StatusUnauthorized
	default:
		return http.StatusInternalServerError
	}
}

// Error is the typed error of this package. Msg says what failed; Err is the
// cause, if any. Neither ever contains the token or any part of it, so an
// Error may be logged and sent to the client as is.
//
// errors.Is(err, ErrX) holds for any *Error with ErrX's code anywhere in
// err's chain; read the details with errors.As.
type Error struct {
	Code Code
	Msg  string
	Err  error
}

// Error returns "code: message: cause".
func (e *Error) Error() string {
	s := string(e.Code)
	if e.Msg != "" {
		s += ": " + e.Msg
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

// Sentinels for errors.Is, one per code.
var (
	ErrMissingToken  = &Error{Code: CodeMissingToken}
	ErrTokenInURL    = &Error{Code: CodeTokenInURL}
	ErrMalformed     = &Error{Code: CodeMalformed}
	ErrAlgNotAllowed = &Error{Code: CodeAlgNotAllowed}
	ErrUnknownKey    = &Error{Code: CodeUnknownKey}
	ErrBadSignature  = &Error{Code: CodeBadSignature}
	ErrExpired       = &Error{Code: CodeExpired}
	ErrNotYetValid   = &Error{Code: CodeNotYetValid}
	ErrMissingClaim  = &Error{Code: CodeMissingClaim}
	ErrBadIssuer     = &Error{Code: CodeBadIssuer}
	ErrBadAudience   = &Error{Code: CodeBadAudience}
	ErrForbidden     = &Error{Code: CodeForbidden}
	ErrBadConfig     = &Error{Code: CodeBadConfig}
)

// CodeOf returns the code of the first *Error in err's chain, or "" when
// there is none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func errorf(code Code, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...), Err: cause}
}
