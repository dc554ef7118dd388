package rooms

import (
	"errors"
	"fmt"
)

// Code is the machine-readable kind of an [Error]. Its values are the
// `error.code` strings of the client protocol and of the server API.
type Code string

// The codes of the client protocol and the server API.
const (
	CodeBadRequest   Code = "bad_request"
	CodeUnauthorized Code = "unauthorized"
	CodeForbidden    Code = "forbidden"
	CodeNotFound     Code = "not_found"
	CodeTooLarge     Code = "too_large"
	CodeRateLimited  Code = "rate_limited"
	CodeUnavailable  Code = "unavailable"
	CodeInternal     Code = "internal"
)

// Error is the one error type chatd shows to clients: a code and a sentence a
// person can act on. Err, when set, is the internal cause; it is logged and
// never shown to clients.
type Error struct {
	Code    Code
	Message string
	Err     error
}

// Error returns the sentence, with the internal cause when there is one.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an [Error] with code and a formatted sentence.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Unavailable wraps a storage failure (Redis down, a timeout) as an
// [Error] with [CodeUnavailable] so that clients learn to retry, while err
// stays available to the log.
func Unavailable(err error) *Error {
	return &Error{Code: CodeUnavailable, Message: "chat storage is unavailable right now; try again shortly", Err: err}
}

// ErrorOf returns the [Error] in err's chain, or an [Error] with
// [CodeInternal] and a generic sentence that hides err.
func ErrorOf(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: "internal error", Err: err}
}
