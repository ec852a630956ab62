// Package client edits a Palimpsest document over the WebSocket protocol
// palimpsest.v1 (schemas/PROTOCOL.md): any Go program, the tests and the
// load generator use it.
//
//	c, _ := client.Open(client.Config{URL: "ws://localhost:8080/v1/ws", Doc: "notes",
//		Token: client.StaticToken(tok), OnChange: func(cs []crdt.Change) { ... }})
//	defer c.Close()
//	c.Insert(0, "hello")          // applied locally at once, sent when connected
//	c.WaitSynced(ctx)             // every local op acknowledged by the log
//	fmt.Println(c.Text())
//
// The client keeps its unacknowledged ops (in memory, and in a Store when
// one is configured) and survives disconnects: it reconnects with
// exponential backoff and jitter, says which sequence it applied last, gets
// exactly the missing events (or a snapshot plus the tail), and resends its
// pending ops, which the server takes idempotently. Its own ops come back
// from the log like everyone's and apply as no-ops, so every client that has
// seen the same events has the same text.
//
// Callbacks run on the client's reader goroutine, one at a time, in log
// order; they must not call back into the client's blocking methods.
package client
