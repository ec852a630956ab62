// Package bridge keeps the AWS shape of this system in step with the event
// log: every event goes to a Kafka topic (new-event, key = document id) and
// to a DynamoDB table (documentId, sequence), and records that AWS-side
// producers write to the topic can come back into the log.
//
//	l, _ := eventlog.Connect(ctx, natsURL, eventlog.Config{})
//	ks, _ := bridge.NewKafkaSink(bridge.KafkaConfig{Brokers: brokers}, l.Config().Stream, true, logger)
//	ds, _ := bridge.NewDynamoSink(ctx, bridge.DynamoConfig{Table: "palimpsest-events", Create: true})
//	b, _ := bridge.New(l, bridge.Config{}, ks, ds)
//	b.Run(ctx) // fetch a batch, every sink writes it (retrying), then ack; until ctx ends
//
// or all of it, as `palimpsest bridge run` does: bridge.Run(ctx, bridge.Options{...}).
//
// Guarantees: an event is acknowledged in the log only after every enabled
// sink confirmed it; each sink receives each document's events in log
// order; a crash, a redelivery or a retry never duplicates an event in a
// sink (DynamoDB: conditional puts; Kafka: a checkpoint in Kafka and a read
// of the topic after it on start and after errors); while a sink or NATS is
// down the bridge waits and then catches up. Inbound records are validated
// (ParseRecord), appended with Origin "kafka" and deduplicated by the log;
// refused ones go to a dead-letter topic with their reason. The bridge's own
// records carry the palimpsest-origin header and are never read back in.
// docs/adr/0006-kafka-dynamodb-bridge.md says why and where the limits are.
package bridge
