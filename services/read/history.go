package read

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// HistoryQuery selects a page of a document's versions.
type HistoryQuery struct {
	// Since and Until bound the versions' times, both inclusive; zero means
	// unbounded.
	Since, Until time.Time
	// Author, when set, keeps only that author's versions.
	Author string
	// Limit is the most versions in the page: 1..MaxHistoryLimit, default
	// DefaultHistoryLimit.
	Limit int
	// Cursor continues after the previous page (its NextCursor).
	Cursor string
}

const (
	DefaultHistoryLimit = 100
	MaxHistoryLimit     = 1000
	// historyScan bounds the events one page reads: a selective filter
	// returns a short (even empty) page with a cursor rather than read a
	// long history in one request.
	historyScan = 20000
)

// Version is one entry of a document's history: one event.
type Version struct {
	Version uint64 `json:"version"`
	// Prev is the document's version before this one (0 for its first).
	Prev    uint64    `json:"prev_version"`
	Author  string    `json:"author"`
	Time    time.Time `json:"time"`
	Site    uint32    `json:"site"`
	Counter uint32    `json:"counter"`
	OpID    string    `json:"op_id,omitempty"`
	// Kind is "insert" or "delete", or "rejected" for an event the projector
	// sets aside (it changes nothing).
	Kind string `json:"kind"`
	// Inserted and Deleted count code points, as the op declares them.
	Inserted int    `json:"inserted"`
	Deleted  int    `json:"deleted"`
	Summary  string `json:"summary"`
}

// HistoryPage is a page of versions, oldest first.
type HistoryPage struct {
	ID       string    `json:"id"`
	Versions []Version `json:"versions"`
	// NextCursor continues with the next page; empty at the end.
	NextCursor string `json:"next_cursor,omitempty"`
}

// cursorPrefix versions the cursor's format.
const cursorPrefix = "h1."

func encodeCursor(next uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatUint(next, 10)))
}

func decodeCursor(c string) (uint64, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		if rest, ok := strings.CutPrefix(string(b), cursorPrefix); ok {
			if n, err := strconv.ParseUint(rest, 10, 64); err == nil && n > 0 {
				return n, nil
			}
		}
	}
	return 0, schemas.Errorf(schemas.CodeBadQuery, nil, "cursor %q is not one this API returned", truncate(c, 64))
}

// History returns a page of doc's versions, in log order (oldest first).
func (s *Service) History(ctx context.Context, doc string, q HistoryQuery) (HistoryPage, error) {
	if err := eventlog.ValidateDocID(doc); err != nil {
		return HistoryPage{}, err
	}
	if q.Limit == 0 {
		q.Limit = DefaultHistoryLimit
	}
	if q.Limit < 1 || q.Limit > MaxHistoryLimit {
		return HistoryPage{}, schemas.Errorf(schemas.CodeBadQuery, nil, "limit %d is out of 1..%d", q.Limit, MaxHistoryLimit)
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		return HistoryPage{}, schemas.Errorf(schemas.CodeBadQuery, nil, "until %s is before since %s", q.Until.Format(time.RFC3339Nano), q.Since.Format(time.RFC3339Nano))
	}
	var from uint64 = 1
	if q.Cursor != "" {
		n, err := decodeCursor(q.Cursor)
		if err != nil {
			return HistoryPage{}, err
		}
		from = n
	}
	page := HistoryPage{ID: doc, Versions: []Version{}}
	scanned := 0
	errDone := errors.New("done")
	fn := func(ev eventlog.Event, evErr error) error {
		if !q.Until.IsZero() && ev.Stored.After(q.Until) {
			return errDone
		}
		scanned++
		keep := (q.Since.IsZero() || !ev.Stored.Before(q.Since)) && (q.Author == "" || ev.Author == q.Author)
		if keep {
			page.Versions = append(page.Versions, describe(&ev, evErr))
		}
		if len(page.Versions) == q.Limit || scanned == historyScan {
			page.NextCursor = encodeCursor(ev.Seq + 1)
			return errDone
		}
		return nil
	}
	var err error
	if q.Cursor == "" && !q.Since.IsZero() {
		err = s.cfg.Log.ReadSince(ctx, doc, q.Since, fn)
	} else {
		err = s.cfg.Log.Read(ctx, doc, from, 0, fn)
	}
	if errors.Is(err, eventlog.ErrUnknownDocument) {
		return HistoryPage{}, notFound(doc)
	}
	if err != nil && err != errDone {
		return HistoryPage{}, err
	}
	return page, nil
}

// describe summarizes one event.
func describe(ev *eventlog.Event, evErr error) Version {
	v := Version{Version: ev.Seq, Prev: ev.PrevSeq, Author: ev.Author, Time: apiTime(ev.Stored), Site: ev.Site, Counter: ev.Counter, OpID: ev.OpID}
	op, err := crdt.DecodeOp(ev.Payload)
	if evErr != nil || ev.Type != schemas.EventOp || err != nil || uint32(op.Site) != ev.Site || op.Counter != ev.Counter {
		v.Kind, v.Summary = "rejected", "rejected (not applied)"
		return v
	}
	if op.Kind == crdt.OpInsert {
		v.Kind, v.Inserted = "insert", op.Len()
		v.Summary = fmt.Sprintf("+%d %s", v.Inserted, chars(v.Inserted))
	} else {
		v.Kind, v.Deleted = "delete", op.Len()
		v.Summary = fmt.Sprintf("−%d %s", v.Deleted, chars(v.Deleted))
	}
	return v
}

func chars(n int) string {
	if n == 1 {
		return "char"
	}
	return "chars"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
