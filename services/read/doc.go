// Package read is the read API: documents now, as of any version or
// instant, their history, diffs and blame, over HTTP (Handler) and to Go
// callers such as the CLI (Service's methods).
//
//	s, _ := read.New(read.Config{Log: log, State: pg, Snapshots: s3, Cache: redis})
//	h, _ := s.Handler(read.HTTPConfig{Verifier: v})  // GET /v1/documents/{id}[/history|/diff|/blame], /openapi.json
//	d, _ := s.Current(ctx, "notes")                   // cache, then state store, then fill the cache
//	d, _ = s.At(ctx, "notes", 1234)                   // snapshot at or before 1234 + the log's tail
//
// Current reads are cache-aside: the read model (Redis), then the state
// store (Postgres), then the read model is filled with the version read,
// through Upsert, which never replaces a newer version; so a reader never
// installs a stale entry over one the projector wrote after its commit. A
// failing cache is bypassed for a while, logged and counted.
//
// Time travel folds a document's events up to a version exactly as the
// projector does, from the closest base: a decoded state kept in memory (a
// bounded LRU keyed by document and version, handed out exclusively and
// moved forward), the nearest snapshot, or the current state; only the
// log's tail after the base is read. Versions are the sequences of the
// document's own events; anything else is unknown_version.
//
// Every error has a stable code (schemas/errors.json) and the HTTP API
// answers it as {"error":{"code","message"}}. The API never tells a caller
// without read access whether a document exists. See docs/adr/0008.
package read
