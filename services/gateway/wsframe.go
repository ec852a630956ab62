package gateway

import (
	"encoding/binary"

	"github.com/palimpsest-editor/palimpsest/schemas"
)

// The server writes its WebSocket frames itself, straight to the socket:
// a server's frames are unmasked, so one event's frame is the same bytes for
// every receiver and is encoded once (see hub), and whatever a connection
// has queued goes out in one write. gorilla/websocket only reads.

// frame is one complete WebSocket frame, header included. It is immutable
// once built and shared by every connection it is queued on.
type frame struct{ b []byte }

const (
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// wsHeader appends a final frame's header for a payload of n bytes.
func wsHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
}

// messageFrame encodes m as a binary WebSocket frame of protocol type t.
func messageFrame(t schemas.FrameType, m schemas.Message) (*frame, error) {
	body, err := schemas.AppendFrame(make([]byte, 10, 64), t, m)
	if err != nil {
		return nil, err
	}
	n := len(body) - 10
	var hdr [10]byte
	h := wsHeader(hdr[:0], opBinary, n)
	start := 10 - len(h)
	copy(body[start:], h)
	return &frame{b: body[start:]}, nil
}

// controlFrame builds a ping, pong or close frame; payload is cut to the
// 125 bytes a control frame may carry.
func controlFrame(op byte, payload []byte) *frame {
	if len(payload) > 125 {
		payload = payload[:125]
	}
	return &frame{b: append(wsHeader(nil, op, len(payload)), payload...)}
}

// closeFrame builds a close frame with code and a reason (cut to fit, at a
// UTF-8 boundary).
func closeFrame(code int, reason string) *frame {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	for len(reason) > 123 {
		reason = reason[:len(reason)-1]
		for len(reason) > 0 && reason[len(reason)-1]&0xC0 == 0x80 {
			reason = reason[:len(reason)-1]
		}
	}
	return controlFrame(opClose, append(p, reason...))
}
