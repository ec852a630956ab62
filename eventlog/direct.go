package eventlog

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// directBatch is JetStream's batched direct get: up to batch messages on
// subject filter, starting at sequence from (or at the first message stored
// at or after since). It needs no consumer, so it costs no cluster
// coordination, and it is answered by the replica of the server the client is
// connected to (local subscribers are preferred), which in a cluster may be a
// moment behind the leader; callers that need a given sequence ask again
// until they see it.
//
// It calls fn for each message in sequence order and returns the highest
// sequence delivered (0 when none matched) and how many matching messages the
// replica had left beyond this batch.
func (l *Log) directBatch(ctx context.Context, filter string, from uint64, since *time.Time, batch int,
	fn func(seq uint64, subject string, hdr nats.Header, data []byte, stored time.Time) error) (last, pending uint64, err error) {
	req := struct {
		Seq       uint64     `json:"seq,omitempty"`
		NextFor   string     `json:"next_by_subj"`
		Batch     int        `json:"batch"`
		StartTime *time.Time `json:"start_time,omitempty"`
	}{Seq: from, NextFor: filter, Batch: batch, StartTime: since}
	if since != nil {
		req.Seq = 0
	}
	body, _ := json.Marshal(req)
	inbox := l.nc.NewRespInbox()
	sub, err := l.nc.SubscribeSync(inbox)
	if err != nil {
		return 0, 0, classify(err, "read %s", filter)
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, -1)
	if err := l.nc.PublishRequest("$JS.API.DIRECT.GET."+l.cfg.Stream, inbox, body); err != nil {
		return 0, 0, classify(err, "read %s", filter)
	}
	rctx, cancel := l.reqCtx(ctx)
	defer cancel()
	for {
		m, err := sub.NextMsgWithContext(rctx)
		if err != nil {
			return last, 0, classify(err, "read %s after sequence %d", filter, last)
		}
		if len(m.Data) == 0 && m.Header.Get("Status") != "" {
			switch m.Header.Get("Status") {
			case "204": // End of batch.
				pending, _ = strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
				return last, pending, nil
			case "404": // Nothing at or after from.
				return last, 0, nil
			case "503":
				return last, 0, unavailable(nil, "read %s: %s", filter, m.Header.Get("Description"))
			default:
				return last, 0, schemas.Errorf(schemas.CodeUnavailable, nil, "read %s: status %s %s", filter, m.Header.Get("Status"), m.Header.Get("Description"))
			}
		}
		seq, perr := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
		if perr != nil {
			return last, 0, schemas.Errorf(schemas.CodeUnavailable, perr, "read %s: direct get reply without a sequence", filter)
		}
		stored, _ := time.Parse(time.RFC3339Nano, m.Header.Get("Nats-Time-Stamp"))
		last = seq
		if err := fn(seq, m.Header.Get("Nats-Subject"), m.Header, m.Data, stored); err != nil {
			return last, 0, err
		}
	}
}
