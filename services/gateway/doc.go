// Package gateway is Palimpsest's WebSocket gateway: editors open a document,
// submit ops and receive every op of the document in log order, over the
// binary protocol palimpsest.v1 (schemas/PROTOCOL.md).
//
//	g, _ := gateway.New(gateway.Config{Log: l, NATS: nc, Sites: sites, Verifier: v})
//	http.Handle("/v1/ws", g)
//	...
//	g.Drain(ctx) // stop taking ops, finish in-flight appends, close every connection with 1001
//
// One connection, three goroutines: the reader validates frames and queues
// appends on the process's committer (rounds one at a time: op by op at a
// typing pace, every document's ops in one atomic JetStream batch under
// load); the acker waits for each batch's JetStream acknowledgement, in
// order, and queues Ack or Nack; the writer
// drains the connection's bounded send queue to the socket, coalescing what is
// queued into one write. Broadcast never comes from the submit path: one
// log subscription per document per process (a hub) encodes each event once
// and queues the same bytes on every local connection of the document. A
// connection whose queue overflows is closed (CloseTooSlow); it reconnects
// and catches up from the log. See docs/adr/0004-broadcast-path.md.
//
// Order of effects for a Submit: validate (frame, sizes, rate, crdt.DecodeOp,
// op site == the connection's site, write permission) → append with the
// server-stamped author → JetStream PubAck → Ack. An op that was not
// acknowledged by the log is never acked and never broadcast.
//
// Security: the token comes from the HttpOnly cookie or the Hello frame, never
// the URL; the Origin is checked; the author of every op is the token's
// subject; a site is bound to its first author per document
// (eventlog.SiteRegistry); frames, ops, batches and documents have size
// limits and every connection a rate limit. A client that breaks a rule gets
// a Nack or an ErrorFrame and a close code, and nobody else notices.
package gateway
