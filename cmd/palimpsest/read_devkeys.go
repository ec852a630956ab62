package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/services/auth"
)

// Development keys across processes. Without an identity provider, `serve`
// signs tokens with a development key kept in its data directory; a `read`
// process elsewhere (another container) cannot read that file, but it shares
// the NATS server. So the public half of a development key may be published
// in the JetStream KV bucket devKeysBucket (key = kid, value = the Ed25519
// public key), and `read` without an identity provider trusts the keys found
// there, reloading them when a token names a kid it does not know. Anyone who
// can write that bucket can mint tokens: this is for development setups
// only; configure --jwks-url (or another key source) anywhere else.
const devKeysBucket = "palimpsest_dev_keys"

// publishDevKey publishes key's public half for other processes' readers.
func publishDevKey(ctx context.Context, l *eventlog.Log, key *auth.DevKey) error {
	b, err := l.OpenBucket(ctx, eventlog.BucketConfig{Name: devKeysBucket,
		Description: "Palimpsest development keys (public halves): trusted by read without an identity provider"})
	if err != nil {
		return err
	}
	pub := key.Private.Public().(ed25519.PublicKey)
	// Idempotent: a restart republishes the same key.
	_, err = b.Put(ctx, key.ID, pub, eventlog.NoRevision)
	return err
}

// devKeysFromLog returns the published development keys.
func devKeysFromLog(ctx context.Context, l *eventlog.Log) ([]auth.Key, error) {
	b, err := l.OpenBucket(ctx, eventlog.BucketConfig{Name: devKeysBucket,
		Description: "Palimpsest development keys (public halves): trusted by read without an identity provider"})
	if err != nil {
		return nil, err
	}
	ids, err := b.Keys(ctx, "")
	if err != nil {
		return nil, err
	}
	var keys []auth.Key
	for _, id := range ids {
		v, _, err := b.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if len(v) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("development key %q in %s: %d bytes, want %d", id, devKeysBucket, len(v), ed25519.PublicKeySize)
		}
		keys = append(keys, auth.Key{ID: id, Public: ed25519.PublicKey(v)})
	}
	return keys, nil
}

// devVerifier verifies with the local development key (when there is one)
// and the published ones, reloading the published keys at most once a
// second when a token names an unknown kid.
type devVerifier struct {
	log    *eventlog.Log
	local  []auth.Key
	cfg    auth.Config
	logger *slog.Logger

	mu     sync.Mutex
	v      *auth.Verifier
	loaded time.Time
}

func newDevVerifier(ctx context.Context, l *eventlog.Log, local []auth.Key, cfg auth.Config, logger *slog.Logger) (*devVerifier, error) {
	d := &devVerifier{log: l, local: local, cfg: cfg, logger: logger}
	if err := d.reload(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *devVerifier) reload(ctx context.Context) error {
	published, err := devKeysFromLog(ctx, d.log)
	if err != nil {
		return err
	}
	cfg := d.cfg
	cfg.Keys = append(append([]auth.Key{}, d.local...), published...)
	if len(cfg.Keys) == 0 {
		// No key yet: one that verifies nothing, until a key is published.
		k, err := auth.GenerateDevKey()
		if err != nil {
			return err
		}
		cfg.Keys = []auth.Key{k.VerifierKey()}
	}
	v, err := auth.NewVerifier(ctx, cfg)
	if err != nil {
		return err
	}
	d.mu.Lock()
	old := d.v
	d.v, d.loaded = v, time.Now()
	d.mu.Unlock()
	if old != nil {
		old.Close()
	}
	d.logger.Info("development keys loaded", "local", len(d.local), "published", len(published))
	return nil
}

// Verify implements read.TokenVerifier.
func (d *devVerifier) Verify(ctx context.Context, token string) (*auth.Principal, error) {
	d.mu.Lock()
	v, loaded := d.v, d.loaded
	d.mu.Unlock()
	p, err := v.Verify(ctx, token)
	if auth.CodeOf(err) != auth.CodeUnknownKey || time.Since(loaded) < time.Second {
		return p, err
	}
	if rerr := d.reload(ctx); rerr != nil {
		d.logger.Warn("reloading the development keys failed", "err", rerr)
		return p, err
	}
	d.mu.Lock()
	v = d.v
	d.mu.Unlock()
	return v.Verify(ctx, token)
}

// Close releases the verifier.
func (d *devVerifier) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.v.Close()
}
