package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/projections"
	"github.com/palimpsest-editor/palimpsest/projections/kvstate"
	"github.com/palimpsest-editor/palimpsest/projections/objsnap"
	"github.com/palimpsest-editor/palimpsest/services/auth"
	"github.com/palimpsest-editor/palimpsest/services/read"
	"github.com/palimpsest-editor/palimpsest/web"
)

// mountAllInOne makes serve the whole system in one process, as the embedded default promises:
// the projector folds the log into the JetStream KV state and Object Store snapshots with an
// in-process read model, and the same mux serves the read API (/v1/documents/, /openapi.json),
// the editor's login (/v1/session) and the browser editor (/). stop ends the projector.
//
// With an external NATS (--nats) serve is the gateway role only: projectors and read API run as
// their own processes against the production stores, so none of this is started. Without
// runProjector the projector is not run (the read API then serves what is stored); commitInterval
// is its projections.Config.CommitInterval (0: the default).
func mountAllInOne(ctx context.Context, mux *http.ServeMux, elog *eventlog.Log, verifier *auth.Verifier,
	reg prometheus.Registerer, log *slog.Logger, runProjector bool, commitInterval time.Duration) (stop func(), err error) {
	state, err := kvstate.Open(ctx, elog)
	if err != nil {
		return nil, err
	}
	snaps, err := objsnap.Open(ctx, elog, elog.Config().Stream+"_snapshots")
	if err != nil {
		return nil, err
	}
	readModel := projections.NewMemoryReadModel(0)
	proj, err := projections.New(projections.Config{Log: elog, State: state, Snapshots: snaps, ReadModel: readModel, CommitInterval: commitInterval,
		Metrics: projections.NewMetrics(reg), Logger: log.With("component", "projector")})
	if err != nil {
		return nil, err
	}
	// The read model is kept up to date by this process's own projector, so it may be the cache.
	svc, err := read.New(read.Config{Log: elog, State: state, Snapshots: snaps, Cache: readModel,
		Registerer: reg, Logger: log.With("component", "read")})
	if err != nil {
		return nil, err
	}
	api, err := svc.Handler(read.HTTPConfig{Verifier: verifier})
	if err != nil {
		return nil, err
	}
	mux.Handle("/v1/documents/", api)
	mux.Handle("/openapi.json", api)
	mux.Handle("/v1/session", web.SessionHandler(func(ctx context.Context, token string) (web.Identity, error) {
		p, err := verifier.Verify(ctx, token)
		if err != nil {
			return web.Identity{}, err
		}
		return web.Identity{Subject: p.Subject, Name: p.Name, Expires: p.ExpiresAt}, nil
	}))
	mux.Handle("/", web.Handler())

	if !runProjector {
		return func() {}, nil
	}
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := proj.Run(pctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("projector stopped", "err", err)
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { cancel(); wg.Wait() }) }, nil
}
