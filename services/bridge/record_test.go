package bridge

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/palimpsest-editor/palimpsest/crdt"
	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// testOp is a valid insert op of site 7, counter 1.
func testOp(t testing.TB) []byte {
	d := crdt.New(7, rand.NewPCG(1, 2))
	op, err := d.Insert(0, "hi")
	if err != nil {
		t.Fatal(err)
	}
	return crdt.AppendOp(nil, &op)
}

func TestParseRecord(t *testing.T) {
	op := base64.StdEncoding.EncodeToString(testOp(t))
	good := fmt.Sprintf(`{"documentId":"notes","opId":"aws-1","site":7,"counter":1,"author":"alice","op":%q}`, op)
	cases := []struct {
		name  string
		key   string
		value string
		code  schemas.Code // 0: accepted
	}{
		{"good", "notes", good, 0},
		{"good without key or author", "", fmt.Sprintf(`{"documentId":"notes","opId":"x","site":7,"counter":1,"op":%q}`, op), 0},
		{"good with the bridge's extra fields", "notes", fmt.Sprintf(`{"documentId":"notes","opId":"x","site":7,"counter":1,"op":%q,"sequence":5,"prevSequence":2,"time":"2026-01-02T03:04:05.123Z"}`, op), 0},
		{"not JSON", "notes", `{"documentId":`, schemas.CodeBadEvent},
		{"two objects", "notes", good + `{}`, schemas.CodeBadEvent},
		{"unknown field", "notes", fmt.Sprintf(`{"documentId":"notes","opId":"x","site":7,"counter":1,"op":%q,"extra":1}`, op), schemas.CodeBadEvent},
		{"site not a number", "notes", fmt.Sprintf(`{"documentId":"notes","opId":"x","site":"7","counter":1,"op":%q}`, op), schemas.CodeBadEvent},
		{"site out of range", "notes", fmt.Sprintf(`{"documentId":"notes","opId":"x","site":4294967296,"counter":1,"op":%q}`, op), schemas.CodeBadEvent},
		{"op not base64", "notes", `{"documentId":"notes","opId":"x","site":7,"counter":1,"op":"!!"}`, schemas.CodeBadEvent},
		{"bad time", "notes", fmt.Sprintf(`{"documentId":"notes","opId":"x","site":7,"counter":1,"op":%q,"time":"yesterday"}`, op), schemas.CodeBadEvent},
		{"no document", "", fmt.Sprintf(`{"opId":"x","site":7,"counter":1,"op":%q}`, op), schemas.CodeBadDocumentID},
		{"document with a dot", "", fmt.Sprintf(`{"documentId":"a.b","opId":"x","site":7,"counter":1,"op":%q}`, op), schemas.CodeBadDocumentID},
		{"key is another document", "other", good, schemas.CodeBadEvent},
		{"no op id", "notes", fmt.Sprintf(`{"documentId":"notes","site":7,"counter":1,"op":%q}`, op), schemas.CodeBadEvent},
		{"op id with a line break", "notes", fmt.Sprintf(`{"documentId":"notes","opId":"a\r\nNats-Msg-Id: b","site":7,"counter":1,"op":%q}`, op), schemas.CodeBadEvent},
		{"op id with a space", "notes", fmt.Sprintf(`{"documentId":"notes","opId":"a b","site":7,"counter":1,"op":%q}`, op), schemas.CodeBadEvent},
		{"op id too long", "notes", fmt.Sprintf(`{"documentId":"notes","opId":%q,"site":7,"counter":1,"op":%q}`, strings.Repeat("x", 129), op), schemas.CodeBadEvent},
		{"author too long", "notes", fmt.Sprintf(`{"documentId":"notes","opId":"x","site":7,"counter":1,"author":%q,"op":%q}`, strings.Repeat("a", 257), op), schemas.CodeBadEvent},
		{"no op", "notes", `{"documentId":"notes","opId":"x","site":7,"counter":1}`, schemas.CodeBadOp},
		{"op garbage", "notes", `{"documentId":"notes","opId":"x","site":7,"counter":1,"op":"AQIDBAU="}`, schemas.CodeBadOp},
		{"op of another site", "notes", fmt.Sprintf(`{"documentId":"notes","opId":"x","site":8,"counter":1,"op":%q}`, op), schemas.CodeBadOp},
		{"op of another counter", "notes", fmt.Sprintf(`{"documentId":"notes","opId":"x","site":7,"counter":2,"op":%q}`, op), schemas.CodeBadOp},
		{"too large", "notes", `{"documentId":"` + strings.Repeat("x", maxRecordBytes) + `"}`, schemas.CodeTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, doc, err := ParseRecord([]byte(c.key), []byte(c.value))
			if c.code == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if doc != "notes" || got.Site != 7 || got.Counter != 1 || got.Origin != OriginKafka || got.ID == "" || len(got.Payload) == 0 {
					t.Fatalf("got %+v for %q", got, doc)
				}
				return
			}
			if schemas.CodeOf(err) != c.code {
				t.Fatalf("error %v (code %v), want code %v", err, schemas.CodeOf(err), c.code)
			}
		})
	}
}

func TestKafkaRecordRoundTrip(t *testing.T) {
	ev := eventlog.Event{Seq: 42, PrevSeq: 40, Origin: "", Event: schemas.Event{Type: schemas.EventOp, Doc: "notes", Site: 7, Counter: 1,
		Author: "alice", OpID: "7-1", Time: 1_700_000_000_123_456_789, Payload: testOp(t)}}
	r, err := kafkaRecord("new-event", "PALIMPSEST", ev)
	if err != nil {
		t.Fatal(err)
	}
	if seq, ok := mirroredSeq(r, "PALIMPSEST"); !ok || seq != 42 {
		t.Fatalf("mirroredSeq = %d, %v", seq, ok)
	}
	if _, ok := mirroredSeq(r, "OTHER"); ok {
		t.Fatal("a record of another stream counts as mirrored")
	}
	op, doc, err := ParseRecord(r.Key, r.Value)
	if err != nil || doc != "notes" || op.ID != "7-1" || op.Author != "alice" || string(op.Payload) != string(ev.Payload) {
		t.Fatalf("ParseRecord of a mirrored record: %+v %q %v", op, doc, err)
	}
	plain := &kgo.Record{Key: []byte("notes"), Value: r.Value}
	if _, ok := mirroredSeq(plain, "PALIMPSEST"); ok {
		t.Fatal("a record without the bridge's headers counts as mirrored")
	}
	d := dlqRecord("dlq", &kgo.Record{Topic: "new-event", Partition: 3, Offset: 9, Key: []byte("k"), Value: []byte("v")},
		schemas.Errorf(schemas.CodeBadOp, errors.New("boom"), "op"))
	if h, _ := header(d, HeaderDLQReason); h != "bad_op" {
		t.Fatalf("reason header %q", h)
	}
	if h, _ := header(d, HeaderDLQSource); h != "new-event/3/9" {
		t.Fatalf("source header %q", h)
	}
}

// FuzzParseRecord: inbound records come from the network; ParseRecord never
// panics, and what it accepts is a valid op of the record's site and counter.
func FuzzParseRecord(f *testing.F) {
	op := base64.StdEncoding.EncodeToString(testOp(f))
	f.Add([]byte("notes"), []byte(fmt.Sprintf(`{"documentId":"notes","opId":"aws-1","site":7,"counter":1,"author":"alice","op":%q}`, op)))
	f.Add([]byte(""), []byte(`{"documentId":"a","opId":"b","site":1,"counter":1,"op":"AQEBAQEBAQ=="}`))
	f.Add([]byte("x"), []byte(`[]`))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		got, doc, err := ParseRecord(key, value)
		if err != nil {
			if schemas.CodeOf(err) == 0 {
				t.Fatalf("error without a code: %v", err)
			}
			return
		}
		if eventlog.ValidateDocID(doc) != nil {
			t.Fatalf("accepted document %q", doc)
		}
		dec, derr := crdt.DecodeOp(got.Payload)
		if derr != nil || uint32(dec.Site) != got.Site || dec.Counter != got.Counter {
			t.Fatalf("accepted op %+v: %v", got, derr)
		}
	})
}
