// Package eventlog is Palimpsest's document history on NATS JetStream, and
// the only package that knows JetStream. Every document is one subject of one
// stream; its events are ordered by stream sequence, and a sequence names one
// exact version of the document.
//
//	srv, _ := eventlog.StartServer(eventlog.ServerConfig{DataDir: dir, Port: -1})
//	l, _ := eventlog.Connect(ctx, srv.ClientURL(), eventlog.Config{}) // or a cluster's URLs, Replicas: 3
//	defer l.Close()
//
//	res, err := l.Append(ctx, "notes", eventlog.Any, eventlog.Op{Site: 7, Counter: 42, Payload: op})
//	// res[0].Seq is the new version; a resent op comes back Duplicate, never twice in the log.
//
//	sub, _ := l.Subscribe(ctx, "notes", from)
//	for {
//		ev, err := sub.Next(ctx) // ev.Seq, ev.PrevSeq (a gap shows), ev.Event (schemas.Event)
//	}
//
// Layout: writers publish to <prefix>.doc.<docID>; the stream's subject
// transform stores the event under <prefix>.p.<partition>.doc.<docID>, where
// partition = PartitionOf(docID) (FNV-1a mod Partitions, as the server
// computes it), so P workers can each own a partition (SubscribePartition).
// See docs/adr/0002 and 0003 for why, and for what is acknowledged when.
//
// Guarantees: Append returns after the server stored, synced and (in a
// cluster) replicated the batch; the ops of one call land atomically and
// consecutively; an op is never stored twice (Nats-Msg-Id within the
// duplicate window, per-document marks beyond it, both checked atomically
// with the write through Nats-Expected-Last-Subject-Sequence); one site's
// ops land in counter order. Errors are *schemas.Error values with stable
// codes (errors.Is(err, eventlog.ErrWrongSequence), ...); ErrUnavailable
// means the outcome is unknown and the same append may be retried.
package eventlog
