package eventlog

import (
	"context"
	"errors"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// DefaultSitesBucket is the KV bucket of the site registry.
const DefaultSitesBucket = "palimpsest_sites"

// siteCacheMax bounds the registry's in-memory cache; it is emptied when full.
const siteCacheMax = 1 << 16

// SiteRegistry binds every (document, site) pair to one author: the first
// author to claim a site in a document owns it for good, so nobody can send
// ops under a site another user has written with. Bindings live in a
// JetStream KV bucket (key "<doc>.<site>", value the author), created with
// the log's replication, and are cached in memory. It is safe for concurrent
// use, also across processes: a claim is a KV create, which only one writer
// wins.
type SiteRegistry struct {
	kv jetstream.KeyValue

	mu    sync.Mutex
	cache map[string]string
}

// OpenSites creates or opens the site registry's bucket (name
// DefaultSitesBucket when empty).
func (l *Log) OpenSites(ctx context.Context, bucket string) (*SiteRegistry, error) {
	if bucket == "" {
		bucket = DefaultSitesBucket
	}
	if !validToken(bucket) {
		return nil, errors.New("eventlog: sites bucket name must be [A-Za-z0-9_-]+")
	}
	var kv jetstream.KeyValue
	err := retryTransient(ctx, func() error {
		rctx, cancel := l.reqCtx(ctx)
		defer cancel()
		var err error
		kv, err = l.js.CreateOrUpdateKeyValue(rctx, jetstream.KeyValueConfig{
			Bucket:      bucket,
			Description: "Palimpsest site registry: the author who owns each site of each document.",
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    l.cfg.Replicas,
		})
		return classify(err, "sites bucket %s", bucket)
	})
	if err != nil {
		return nil, err
	}
	return &SiteRegistry{kv: kv, cache: map[string]string{}}, nil
}

// Claim binds site of document doc to author, or checks that it is bound to
// author already. It returns a schemas.ErrForbidden error when another author
// owns the site, ErrBadDocumentID for a bad doc, ErrUnavailable when the
// bucket cannot be reached.
func (r *SiteRegistry) Claim(ctx context.Context, doc string, site uint32, author string) error {
	if err := ValidateDocID(doc); err != nil {
		return err
	}
	if site == 0 || author == "" {
		return schemas.Errorf(schemas.CodeBadEvent, nil, "document %q: site %d and author %q: both are required", doc, site, author)
	}
	key := doc + "." + strconv.FormatUint(uint64(site), 10)
	r.mu.Lock()
	owner, ok := r.cache[key]
	r.mu.Unlock()
	if !ok {
		_, err := r.kv.Create(ctx, key, []byte(author))
		switch {
		case err == nil:
			owner = author
		case errors.Is(err, jetstream.ErrKeyExists):
			e, gerr := r.kv.Get(ctx, key)
			if gerr != nil {
				return classify(gerr, "document %q: read the owner of site %d", doc, site)
			}
			owner = string(e.Value())
		default:
			return classify(err, "document %q: claim site %d", doc, site)
		}
		r.mu.Lock()
		if len(r.cache) >= siteCacheMax {
			clear(r.cache)
		}
		r.cache[key] = owner
		r.mu.Unlock()
	}
	if owner != author {
		return schemas.Errorf(schemas.CodeForbidden, nil, "document %q: site %d belongs to another author", doc, site)
	}
	return nil
}
