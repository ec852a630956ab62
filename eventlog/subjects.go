package eventlog

import (
	"fmt"
	"hash/fnv"
	"strconv"

	"github.com/palimpsest-editor/palimpsest/schemas"
)

// MaxDocIDLen is the longest document id, in bytes.
const MaxDocIDLen = 128

// ValidateDocID returns a schemas.ErrBadDocumentID error unless id is 1 to
// MaxDocIDLen bytes of [A-Za-z0-9_-]. Such an id is one NATS subject token and
// a valid KV key, so it can never address another document's subject.
func ValidateDocID(id string) error {
	if len(id) == 0 || len(id) > MaxDocIDLen || !validToken(id) {
		return schemas.Errorf(schemas.CodeBadDocumentID, nil, "document id %q", truncate(id))
	}
	return nil
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
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

// PartitionOf returns the partition, in [0, partitions), that the server's
// subject transform {{partition(partitions,1)}} assigns to document id: the
// FNV-1a 32-bit hash of the id modulo partitions. A test publishes through a
// real server and checks the two agree.
func PartitionOf(id string, partitions int) int {
	if partitions <= 0 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % uint32(partitions))
}

// Subjects derives the subjects of one stream layout.
type Subjects struct {
	Prefix     string
	Partitions int
}

// Publish is the subject writers publish document id's events to.
func (s Subjects) Publish(id string) string { return s.Prefix + ".doc." + id }

// Stored is the subject document id's events are stored under, after the
// stream's partitioning transform.
func (s Subjects) Stored(id string) string {
	return s.Prefix + ".p." + strconv.Itoa(PartitionOf(id, s.Partitions)) + ".doc." + id
}

// Partition is the filter subject of every stored event of partition p.
func (s Subjects) Partition(p int) string {
	return s.Prefix + ".p." + strconv.Itoa(p) + ".doc.*"
}

// transform returns the stream's subject transform source and destination.
func (s Subjects) transform() (src, dst string) {
	return s.Prefix + ".doc.*", fmt.Sprintf("%s.p.{{partition(%d,1)}}.doc.{{wildcard(1)}}", s.Prefix, s.Partitions)
}
