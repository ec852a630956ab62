package eventlog

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// The errors of this package are *schemas.Error values with stable codes;
// test them with errors.Is against these sentinels (aliases of the generated
// ones in package schemas).
var (
	ErrWrongSequence   = schemas.ErrWrongSequence
	ErrDuplicate       = schemas.ErrDuplicate
	ErrTooLarge        = schemas.ErrTooLarge
	ErrUnknownDocument = schemas.ErrUnknownDocument
	ErrOutOfOrder      = schemas.ErrOutOfOrder
	ErrCounterGap      = schemas.ErrCounterGap
	ErrUnavailable     = schemas.ErrUnavailable
	ErrBadEvent        = schemas.ErrBadEvent
	ErrBadDocumentID   = schemas.ErrBadDocumentID
)

// SequenceError is returned by Append when the document's last sequence is
// not the expected one. errors.Is(err, ErrWrongSequence) holds for it.
type SequenceError struct {
	Doc      string
	Expected uint64
	Actual   uint64
}

func (e *SequenceError) Error() string {
	return fmt.Sprintf("%s: document %q: expected last sequence %d, the log has %d", schemas.CodeWrongSequence, e.Doc, e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrWrongSequence) true.
func (e *SequenceError) Is(target error) bool { return target == ErrWrongSequence }

// Code returns schemas.CodeWrongSequence.
func (e *SequenceError) Code() schemas.Code { return schemas.CodeWrongSequence }

// JetStream API error codes this package reacts to (nats-server errors.json).
const (
	jsWrongLastSeq          = 10071 // wrong last sequence: {seq}
	jsWrongLastSeqConstant  = 10164 // wrong last sequence (subject in flight)
	jsDuplicateInProcess    = 10158 // duplicate message id is in process
	jsBatchHasDuplicate     = 10201 // atomic publish batch contains duplicate message id
	jsBatchIncomplete       = 10176 // atomic publish batch is incomplete
	jsBatchTooManyInflight  = 10210 // atomic publish too many inflight
	jsMessageExceedsMaximum = 10054 // message size exceeds maximum allowed
	jsClusterNotLeader      = 10009
	jsNotAvailable          = 10008 // JetStream system temporarily unavailable
)

// unavailable wraps a transport or cluster error: the outcome of a write is
// unknown and retrying it is safe.
func unavailable(err error, format string, args ...any) error {
	return schemas.Errorf(schemas.CodeUnavailable, err, format, args...)
}

// isTransient reports whether err means the server or cluster cannot answer
// now (connection lost, no leader, timeout).
func isTransient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jsClusterNotLeader, jsNotAvailable:
			return true
		}
		return apiErr.Code == 503
	}
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrNoHeartbeat)
}

// classify maps a transport or JetStream error to this package's errors.
func classify(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var se *schemas.Error
	if errors.As(err, &se) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf(format+": %w", append(args, err)...)
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jsMessageExceedsMaximum {
		return schemas.Errorf(schemas.CodeTooLarge, err, format, args...)
	}
	if isTransient(err) {
		return unavailable(err, format, args...)
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}
