// Package projections folds the event log into durable state: the
// "synchronization service". Its ports are small interfaces with one
// conformance suite each (projtest), and adapters in sub-packages:
//
//	StateStore/StateBackend  pgstate (PostgreSQL, production)  kvstate (JetStream KV, embedded default)
//	SnapshotStore            s3snap (S3, MinIO)                objsnap (JetStream Object Store)
//	ReadModel                redisread (Redis)                 MemoryReadModel (in process)
//
// The projector's loop, per partition it holds the lease of:
//
//	cp := store.Checkpoint(p)                         // every event of p up to cp is folded
//	cons := log.OpenPartitionConsumer(name, p, cp)    // durable consumer, repositioned to cp+1
//	for {
//		batch := cons.Fetch(16384)                    // many ops, many documents
//		docs := fold(batch)                           // in memory (LRU of CRDT replicas); skip seq <= doc version
//		deadLetter(poison)                            // undecodable or refused ops; the partition goes on
//		store.Commit(docs, checkpoint p = last seq)   // one transaction: each document written once
//		cons.Ack()                                    // only after the commit
//		readModel.Upsert(docs); snapshots(docs)       // after the commit; both are caches of it
//	}
//
// The stages overlap without reordering: the next batch is fetched while one
// folds, and folds while the previous one commits; an ack always follows its
// commit. A crash anywhere repeats at most the uncommitted batch, and the version
// check makes the repeat change nothing. Rebuild folds the whole log into a
// fresh generation beside the live one and promotes it atomically. See
// docs/adr/0005 for what is acknowledged when.
package projections
