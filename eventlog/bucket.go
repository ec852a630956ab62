package eventlog

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// Bucket is a JetStream key-value bucket on the log's server, for the
// projections that keep their state in JetStream (the embedded default).
// Every write can be conditional on the key's revision (a stream sequence,
// which only grows), which is how writers fence each other. It is safe for
// concurrent use.
type Bucket struct {
	l    *Log
	name string
	kv   jetstream.KeyValue
}

// BucketConfig describes a bucket for OpenBucket.
type BucketConfig struct {
	// Name is the bucket's name: [A-Za-z0-9_-]+.
	Name        string
	Description string
	// TTL, when positive, removes an entry that long after its last write
	// (leases use it).
	TTL time.Duration
}

// NoRevision, as Write.Revision, makes a write unconditional.
const NoRevision = ^uint64(0)

// OpenBucket creates the bucket, or opens it as it is. It keeps one
// revision of each key, on file storage, with the log's replication.
func (l *Log) OpenBucket(ctx context.Context, cfg BucketConfig) (*Bucket, error) {
	if !validToken(cfg.Name) {
		return nil, errors.New("eventlog: bucket name must be [A-Za-z0-9_-]+")
	}
	var kv jetstream.KeyValue
	err := retryTransient(ctx, func() error {
		rctx, cancel := l.reqCtx(ctx)
		defer cancel()
		var err error
		kv, err = l.js.KeyValue(rctx, cfg.Name)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = l.js.CreateKeyValue(rctx, jetstream.KeyValueConfig{
				Bucket:      cfg.Name,
				Description: cfg.Description,
				History:     1,
				TTL:         cfg.TTL,
				Storage:     jetstream.FileStorage,
				Replicas:    l.cfg.Replicas,
			})
			if errors.Is(err, jetstream.ErrBucketExists) {
				kv, err = l.js.KeyValue(rctx, cfg.Name)
			}
		}
		return err
	})
	if err != nil {
		return nil, classify(err, "bucket %s", cfg.Name)
	}
	return &Bucket{l: l, name: cfg.Name, kv: kv}, nil
}

// DeleteBucket removes a bucket and everything in it; a missing one is no
// error.
func (l *Log) DeleteBucket(ctx context.Context, name string) error {
	rctx, cancel := l.reqCtx(ctx)
	defer cancel()
	if err := l.js.DeleteKeyValue(rctx, name); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return classify(err, "delete bucket %s", name)
	}
	return nil
}

// Name is the bucket's name.
func (b *Bucket) Name() string { return b.name }

// Get returns key's value and revision; a missing (or deleted) key returns
// revision 0 and no error.
func (b *Bucket) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	rctx, cancel := b.l.reqCtx(ctx)
	defer cancel()
	e, err := b.kv.Get(rctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, classify(err, "bucket %s: get %q", b.name, key)
	}
	return e.Value(), e.Revision(), nil
}

// Write is one conditional put of PutMany.
type Write struct {
	Key   string
	Value []byte
	// Revision is the key's revision the write expects: 0 for a key that
	// has never been written, NoRevision for any.
	Revision uint64
}

// Put writes value under key if the key's revision is rev (0: the key does
// not exist; NoRevision: whatever it is) and returns the new revision. A
// mismatch is an ErrWrongSequence error.
func (b *Bucket) Put(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	revs, err := b.PutMany(ctx, []Write{{Key: key, Value: value, Revision: rev}})
	if err != nil {
		return 0, err
	}
	return revs[0], nil
}

// PutMany writes every entry concurrently, each conditional on its
// Revision, and returns their new revisions in order. The writes are not
// atomic together: on error some may have landed. A revision mismatch is an
// ErrWrongSequence error.
func (b *Bucket) PutMany(ctx context.Context, ws []Write) ([]uint64, error) {
	rctx, cancel := b.l.reqCtx(ctx)
	defer cancel()
	futs := make([]jetstream.PubAckFuture, len(ws))
	for i, w := range ws {
		m := nats.NewMsg("$KV." + b.name + "." + w.Key)
		m.Data = w.Value
		var opts []jetstream.PublishOpt
		if w.Revision != NoRevision {
			opts = append(opts, jetstream.WithExpectLastSequencePerSubject(w.Revision))
		}
		f, err := b.l.js.PublishMsgAsync(m, opts...)
		if err != nil {
			return nil, classify(err, "bucket %s: put %q", b.name, w.Key)
		}
		futs[i] = f
	}
	revs := make([]uint64, len(ws))
	var first error
	for i, f := range futs {
		select {
		case ack := <-f.Ok():
			revs[i] = ack.Sequence
		case err := <-f.Err():
			var apiErr *jetstream.APIError
			if first == nil {
				if errors.As(err, &apiErr) && (apiErr.ErrorCode == jsWrongLastSeq || apiErr.ErrorCode == jsWrongLastSeqConstant) {
					first = schemas.Errorf(schemas.CodeWrongSequence, err, "bucket %s: key %q changed since revision %d", b.name, ws[i].Key, ws[i].Revision)
				} else {
					first = classify(err, "bucket %s: put %q", b.name, ws[i].Key)
				}
			}
		case <-rctx.Done():
			if first == nil {
				first = unavailable(rctx.Err(), "bucket %s: put %q", b.name, ws[i].Key)
			}
		}
	}
	if first != nil {
		return nil, first
	}
	return revs, nil
}

// Delete removes key if its revision is rev (NoRevision: whatever it is).
// A mismatch is an ErrWrongSequence error; a missing key is none.
func (b *Bucket) Delete(ctx context.Context, key string, rev uint64) error {
	rctx, cancel := b.l.reqCtx(ctx)
	defer cancel()
	var opts []jetstream.KVDeleteOpt
	if rev != NoRevision {
		opts = append(opts, jetstream.LastRevision(rev))
	}
	err := b.kv.Delete(rctx, key, opts...)
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jsWrongLastSeq || apiErr.ErrorCode == jsWrongLastSeqConstant) {
		return schemas.Errorf(schemas.CodeWrongSequence, err, "bucket %s: key %q changed since revision %d", b.name, key, rev)
	}
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return classify(err, "bucket %s: delete %q", b.name, key)
	}
	return nil
}

// Keys returns the keys that start with prefix, in no particular order.
func (b *Bucket) Keys(ctx context.Context, prefix string) ([]string, error) {
	rctx, cancel := b.l.reqCtx(ctx)
	defer cancel()
	filter := ">"
	if prefix != "" {
		filter = prefix + ">"
	}
	kl, err := b.kv.ListKeysFiltered(rctx, filter)
	if err != nil {
		return nil, classify(err, "bucket %s: keys", b.name)
	}
	defer kl.Stop()
	var keys []string
	for k := range kl.Keys() {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// Objects is a JetStream object store bucket, for snapshots in the embedded
// default. It is safe for concurrent use.
type Objects struct {
	l    *Log
	name string
	os   jetstream.ObjectStore
}

// OpenObjects creates the object store bucket name, or opens it.
func (l *Log) OpenObjects(ctx context.Context, name, description string) (*Objects, error) {
	if !validToken(name) {
		return nil, errors.New("eventlog: object bucket name must be [A-Za-z0-9_-]+")
	}
	var os jetstream.ObjectStore
	err := retryTransient(ctx, func() error {
		rctx, cancel := l.reqCtx(ctx)
		defer cancel()
		var err error
		os, err = l.js.CreateOrUpdateObjectStore(rctx, jetstream.ObjectStoreConfig{
			Bucket:      name,
			Description: description,
			Storage:     jetstream.FileStorage,
			Replicas:    l.cfg.Replicas,
			Compression: false,
		})
		return err
	})
	if err != nil {
		return nil, classify(err, "object bucket %s", name)
	}
	return &Objects{l: l, name: name, os: os}, nil
}

// Put stores data under name, replacing what was there.
func (o *Objects) Put(ctx context.Context, name string, data []byte) error {
	rctx, cancel := o.l.reqCtx(ctx)
	defer cancel()
	if _, err := o.os.PutBytes(rctx, name, data); err != nil {
		return classify(err, "object bucket %s: put %q", o.name, name)
	}
	return nil
}

// Get returns the object name, or found == false.
func (o *Objects) Get(ctx context.Context, name string) (data []byte, found bool, err error) {
	rctx, cancel := o.l.reqCtx(ctx)
	defer cancel()
	data, err = o.os.GetBytes(rctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, classify(err, "object bucket %s: get %q", o.name, name)
	}
	return data, true, nil
}

// Delete removes the object name; a missing one is no error.
func (o *Objects) Delete(ctx context.Context, name string) error {
	rctx, cancel := o.l.reqCtx(ctx)
	defer cancel()
	if err := o.os.Delete(rctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return classify(err, "object bucket %s: delete %q", o.name, name)
	}
	return nil
}
