package schemas

// Subprotocol is the WebSocket subprotocol (Sec-WebSocket-Protocol) of the
// wire protocol described in PROTOCOL.md. A new incompatible protocol gets a
// new name; the server answers a client that offers none it knows with
// CloseUnsupportedVersion.
const Subprotocol = "palimpsest.v1"

// WebSocket close codes of the protocol. 1000 and 1001 are the standard ones;
// the 4xxx codes are the protocol's own. A client reconnects after any of them
// except CloseForbidden, CloseUnsupportedVersion and CloseUnauthenticated,
// which need something changed first (a token, a document, a build).
const (
	CloseNormal             = 1000 // the client or server closed on purpose
	CloseGoingAway          = 1001 // the server drains: reconnect (elsewhere)
	CloseInternal           = 1011 // unexpected server error: reconnect with backoff
	CloseMalformed          = 4000 // a frame that is not a message of the protocol, a text frame, Hello missing or late
	CloseAuthExpired        = 4001 // the token expired; reconnect with a fresh one
	CloseUnsupportedVersion = 4002 // no known subprotocol offered, or a message version this server does not read
	CloseForbidden          = 4003 // the token does not grant the document, or the site is another author's
	CloseUnauthenticated    = 4004 // the token is missing, malformed, forged or of a disallowed alg
	CloseTooLarge           = 4009 // a frame over the size limit
	CloseTooSlow            = 4013 // the send queue overflowed: reconnect and catch up
	CloseRateLimited        = 4029 // over the connection's rate limit: reconnect later
)

// Message is what every wire message implements.
type Message interface {
	AppendBinary(buf []byte) ([]byte, error)
	UnmarshalBinary(data []byte) error
}

// AppendFrame appends the frame of m, of type t, to buf: the type byte, then
// m's binary encoding, version byte first.
func AppendFrame(buf []byte, t FrameType, m Message) ([]byte, error) {
	return m.AppendBinary(append(buf, byte(t)))
}

// SplitFrame returns a frame's type and its message's bytes. An empty frame
// or an unknown type is a CodeBadFrame error.
func SplitFrame(frame []byte) (FrameType, []byte, error) {
	if len(frame) == 0 {
		return 0, nil, Errorf(CodeBadFrame, nil, "empty frame")
	}
	t := FrameType(frame[0])
	if !t.Valid() {
		return 0, nil, Errorf(CodeBadFrame, nil, "unknown frame type %d", frame[0])
	}
	return t, frame[1:], nil
}
