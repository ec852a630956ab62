package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// Record is the JSON value of a record on the Kafka topic, in both
// directions (docs/adr/0006):
//
//	{"documentId":"notes","opId":"7-42","site":7,"counter":42,"author":"alice","op":"AQEHKgEBAQ..."}
//
// Op is the CRDT op as encoded by crdt.AppendOp, in standard base64. The
// bridge adds sequence, prevSequence and time to the records it mirrors from
// the log; an inbound record may carry them and they are ignored, because the
// log assigns its own.
type Record struct {
	DocumentID   string `json:"documentId"`
	OpID         string `json:"opId"`
	Site         uint32 `json:"site"`
	Counter      uint32 `json:"counter"`
	Author       string `json:"author,omitempty"`
	Op           []byte `json:"op"`
	Sequence     uint64 `json:"sequence,omitempty"`
	PrevSequence uint64 `json:"prevSequence,omitempty"`
	Time         string `json:"time,omitempty"`
}

// Kafka headers of the records the bridge produces. HeaderOrigin marks them
// as Palimpsest's, so the inbound direction skips them instead of appending
// them to the log again (no echo loop).
const (
	HeaderOrigin        = "palimpsest-origin"         // OriginPalimpsest
	HeaderStream        = "palimpsest-stream"         // the JetStream stream the event is in
	HeaderSeq           = "palimpsest-seq"            // the event's stream sequence: its idempotency key with the key
	HeaderPrevSeq       = "palimpsest-prev-seq"       // the document's previous event's sequence (0: none)
	HeaderEventType     = "palimpsest-event-type"     // schemas.EventType, "op"
	HeaderSchemaVersion = "palimpsest-schema-version" // schemas.EventVersion
	OriginPalimpsest    = "palimpsest"

	// Dead-letter headers, added to a copy of the refused record.
	HeaderDLQReason = "palimpsest-dlq-reason" // a stable code: bad_event, bad_document_id, bad_op, too_large
	HeaderDLQError  = "palimpsest-dlq-error"  // what was wrong, for humans
	HeaderDLQSource = "palimpsest-dlq-source" // topic/partition/offset of the refused record
)

// OriginKafka is the eventlog.Op.Origin of ops the bridge appends from Kafka.
// The Kafka sink does not mirror them back: they are on the topic already.
const OriginKafka = "kafka"

// maxRecordBytes bounds an inbound record's value before it is parsed.
const maxRecordBytes = 1 << 20

// kafkaRecord builds the record that mirrors ev onto topic.
func kafkaRecord(topic, stream string, ev eventlog.Event) (*kgo.Record, error) {
	v, err := json.Marshal(Record{
		DocumentID:   ev.Doc,
		OpID:         ev.OpID,
		Site:         ev.Site,
		Counter:      ev.Counter,
		Author:       ev.Author,
		Op:           ev.Payload,
		Sequence:     ev.Seq,
		PrevSequence: ev.PrevSeq,
		Time:         time.Unix(0, ev.Time).UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		return nil, err
	}
	return &kgo.Record{
		Topic: topic,
		Key:   []byte(ev.Doc),
		Value: v,
		Headers: []kgo.RecordHeader{
			{Key: HeaderOrigin, Value: []byte(OriginPalimpsest)},
			{Key: HeaderStream, Value: []byte(stream)},
			{Key: HeaderSeq, Value: strconv.AppendUint(nil, ev.Seq, 10)},
			{Key: HeaderPrevSeq, Value: strconv.AppendUint(nil, ev.PrevSeq, 10)},
			{Key: HeaderEventType, Value: []byte(ev.Type.String())},
			{Key: HeaderSchemaVersion, Value: strconv.AppendUint(nil, schemas.EventVersion, 10)},
		},
	}, nil
}

// header returns the value of r's first header named key.
func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// mirroredSeq returns the stream sequence of a record the bridge produced
// from stream, and false for any other record.
func mirroredSeq(r *kgo.Record, stream string) (uint64, bool) {
	if o, _ := header(r, HeaderOrigin); o != OriginPalimpsest {
		return 0, false
	}
	if s, _ := header(r, HeaderStream); s != stream {
		return 0, false
	}
	v, _ := header(r, HeaderSeq)
	seq, err := strconv.ParseUint(v, 10, 64)
	return seq, err == nil && seq > 0
}

// ParseRecord reads an inbound record's value (and its Kafka key, which, when
// present, must be the document id) into the op to append. Everything is
// checked: strict JSON with no unknown fields, a valid document id, an op id
// of 1 to 128 visible ASCII characters, an author of at most 256 bytes of
// UTF-8, and an op that
// decodes with crdt.DecodeOp and is the record's site and counter. Errors are
// *schemas.Error values whose Code is the dead letter's reason: bad_event,
// bad_document_id, bad_op or too_large.
func ParseRecord(key, value []byte) (eventlog.Op, string, error) {
	if len(value) > maxRecordBytes {
		return eventlog.Op{}, "", schemas.Errorf(schemas.CodeTooLarge, nil, "record of %d bytes, at most %d", len(value), maxRecordBytes)
	}
	var r Record
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return eventlog.Op{}, "", schemas.Errorf(schemas.CodeBadEvent, err, "record is not the bridge's JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return eventlog.Op{}, "", schemas.Errorf(schemas.CodeBadEvent, nil, "record has data after its JSON object")
	}
	if err := eventlog.ValidateDocID(r.DocumentID); err != nil {
		return eventlog.Op{}, "", err
	}
	if len(key) > 0 && string(key) != r.DocumentID {
		return eventlog.Op{}, "", schemas.Errorf(schemas.CodeBadEvent, nil, "record key %q is not its documentId %q", truncate(string(key)), r.DocumentID)
	}
	switch {
	case !validOpID(r.OpID):
		return eventlog.Op{}, "", schemas.Errorf(schemas.CodeBadEvent, nil, "opId %q: want 1 to 128 visible ASCII characters", truncate(r.OpID))
	case len(r.Author) > 256 || !utf8.ValidString(r.Author):
		return eventlog.Op{}, "", schemas.Errorf(schemas.CodeBadEvent, nil, "author: want at most 256 bytes of UTF-8")
	case r.Time != "":
		if _, err := time.Parse(time.RFC3339Nano, r.Time); err != nil {
			return eventlog.Op{}, "", schemas.Errorf(schemas.CodeBadEvent, err, "time %q", truncate(r.Time))
		}
	}
	op, err := crdt.DecodeOp(r.Op)
	if err != nil {
		return eventlog.Op{}, "", schemas.Errorf(schemas.CodeBadOp, err, "op of %d bytes", len(r.Op))
	}
	if uint32(op.Site) != r.Site || op.Counter != r.Counter {
		return eventlog.Op{}, "", schemas.Errorf(schemas.CodeBadOp, nil, "record says site %d counter %d, its op is site %d counter %d", r.Site, r.Counter, op.Site, op.Counter)
	}
	return eventlog.Op{ID: r.OpID, Site: r.Site, Counter: r.Counter, Author: r.Author, Payload: r.Op, Origin: OriginKafka}, r.DocumentID, nil
}

// validOpID reports whether id is 1 to 128 visible ASCII characters: it
// travels in a NATS header (Nats-Msg-Id), where a control character or a
// line break would corrupt the message.
func validOpID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// dlqRecord is a copy of refused, for topic, with the reason in its headers.
func dlqRecord(topic string, refused *kgo.Record, err error) *kgo.Record {
	reason := schemas.CodeOf(err).String()
	if schemas.CodeOf(err) == 0 {
		reason = schemas.CodeBadEvent.String()
	}
	hdrs := append([]kgo.RecordHeader(nil), refused.Headers...)
	hdrs = append(hdrs,
		kgo.RecordHeader{Key: HeaderDLQReason, Value: []byte(reason)},
		kgo.RecordHeader{Key: HeaderDLQError, Value: []byte(err.Error())},
		kgo.RecordHeader{Key: HeaderDLQSource, Value: fmt.Appendf(nil, "%s/%d/%d", refused.Topic, refused.Partition, refused.Offset)},
	)
	return &kgo.Record{Topic: topic, Key: refused.Key, Value: refused.Value, Headers: hdrs}
}
