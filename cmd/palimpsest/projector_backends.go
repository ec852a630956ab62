package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/projections"
	"github.com/palimpsest-editor/palimpsest/projections/kvstate"
	"github.com/palimpsest-editor/palimpsest/projections/objsnap"
	"github.com/palimpsest-editor/palimpsest/projections/pgstate"
	"github.com/palimpsest-editor/palimpsest/projections/redisread"
	"github.com/palimpsest-editor/palimpsest/projections/s3snap"
)

// projectionFlags say where the log and the projections live. Every empty
// one means the embedded default: JetStream (embedded server, KV bucket,
// Object Store) and an in-process read model.
type projectionFlags struct {
	natsURL, natsListen, data string
	postgres, s3, redis       string
	partitions                int
	logFormat, logLevel       string
}

func (f *projectionFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.natsURL, "nats", "", "URL(s) of the NATS server or cluster; empty runs an embedded one under --data")
	fs.StringVar(&f.natsListen, "nats-listen", "", "host:port where the embedded NATS server also accepts clients (default: in-process only)")
	fs.StringVar(&f.data, "data", "", "directory of the embedded NATS server's files (default: a per-user data directory)")
	fs.StringVar(&f.postgres, "postgres", "", "PostgreSQL URL of the state projection (default: a JetStream KV bucket)")
	fs.StringVar(&f.s3, "s3", "", "S3 endpoint of the snapshots, http(s)://KEY:SECRET@host:port/bucket[/prefix] (default: a JetStream Object Store)")
	fs.StringVar(&f.redis, "redis", "", "Redis URL of the read model, redis://host:port/db (default: in-process)")
	fs.IntVar(&f.partitions, "partitions", 0, "partitions of a new event stream (default 16; fixed once created)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// projectionBackends are the opened log and stores; close releases them in
// reverse order.
type projectionBackends struct {
	log     *eventlog.Log
	state   projections.StateBackend
	snaps   projections.SnapshotStore
	read    projections.ReadModel
	closers []func()
}

func (b *projectionBackends) close() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
}

// openLog connects to --nats or starts the embedded server.
func (f *projectionFlags) openLog(ctx context.Context, logger *slog.Logger, b *projectionBackends) error {
	cfg := eventlog.Config{Partitions: f.partitions, Logger: logger}
	if f.natsURL != "" {
		l, err := eventlog.Connect(ctx, f.natsURL, cfg)
		if err != nil {
			return fmt.Errorf("--nats %s: %w", f.natsURL, err)
		}
		b.log = l
		b.closers = append(b.closers, func() { l.Close() })
		return nil
	}
	data := f.data
	if data == "" {
		var err error
		if data, err = defaultDataDir(); err != nil {
			return fmt.Errorf("no --data and no per-user data directory: %w", err)
		}
	}
	sc := eventlog.ServerConfig{DataDir: filepath.Join(data, "jetstream"), DontListen: f.natsListen == "", Logger: logger.With("component", "nats")}
	if f.natsListen != "" {
		host, port, err := net.SplitHostPort(f.natsListen)
		if err != nil {
			return fmt.Errorf("--nats-listen %q: %w", f.natsListen, err)
		}
		sc.Host = host
		if _, err := fmt.Sscan(port, &sc.Port); err != nil {
			return fmt.Errorf("--nats-listen %q: bad port", f.natsListen)
		}
	}
	srv, err := eventlog.StartServer(sc)
	if err != nil {
		return err
	}
	b.closers = append(b.closers, srv.Shutdown)
	nc, err := srv.Connect()
	if err != nil {
		return err
	}
	b.closers = append(b.closers, nc.Close)
	l, err := eventlog.Open(ctx, nc, cfg)
	if err != nil {
		return err
	}
	b.log = l
	b.closers = append(b.closers, func() { l.Close() })
	logger.Info("embedded NATS JetStream", "data", sc.DataDir, "url", srv.ClientURL())
	return nil
}

// open opens the log and every store the flags name.
func (f *projectionFlags) open(ctx context.Context, logger *slog.Logger, withReads bool) (_ *projectionBackends, err error) {
	b := &projectionBackends{}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	if err := f.openLog(ctx, logger, b); err != nil {
		return nil, err
	}
	if f.postgres != "" {
		pg, err := pgstate.Open(ctx, f.postgres)
		if err != nil {
			return nil, fmt.Errorf("--postgres: %w", err)
		}
		b.state = pg
		b.closers = append(b.closers, pg.Close)
	} else {
		kv, err := kvstate.Open(ctx, b.log)
		if err != nil {
			return nil, err
		}
		b.state = kv
	}
	if !withReads {
		return b, nil
	}
	if f.s3 != "" {
		s, err := openS3(ctx, f.s3)
		if err != nil {
			return nil, fmt.Errorf("--s3: %w", err)
		}
		b.snaps = s
	} else {
		s, err := objsnap.Open(ctx, b.log, b.log.Config().Stream+"_snapshots")
		if err != nil {
			return nil, err
		}
		b.snaps = s
	}
	if f.redis != "" {
		opts, err := redis.ParseURL(f.redis)
		if err != nil {
			return nil, fmt.Errorf("--redis: %w", err)
		}
		c := redis.NewClient(opts)
		b.closers = append(b.closers, func() { c.Close() })
		b.read = redisread.New(c, "", 24*time.Hour)
	} else {
		b.read = projections.NewMemoryReadModel(0)
	}
	return b, nil
}

// openS3 parses http(s)://KEY:SECRET@host:port/bucket[/prefix] and creates
// the bucket if it does not exist.
func openS3(ctx context.Context, raw string) (*s3snap.Store, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errors.New("want http(s)://KEY:SECRET@host:port/bucket[/prefix]")
	}
	bucket, prefix, _ := strings.Cut(strings.Trim(u.Path, "/"), "/")
	if bucket == "" {
		return nil, errors.New("no bucket in the URL's path")
	}
	if prefix != "" {
		prefix += "/"
	}
	secret, _ := u.User.Password()
	c, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(u.User.Username(), secret, ""), Secure: u.Scheme == "https"})
	if err != nil {
		return nil, err
	}
	ok, err := c.BucketExists(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", bucket, err)
	}
	if !ok {
		if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
			return nil, fmt.Errorf("create bucket %s: %w", bucket, err)
		}
	}
	return s3snap.New(c, bucket, prefix), nil
}

// fromEnvAndLogger applies PALIMPSEST_* variables and builds the logger.
func (f *projectionFlags) fromEnvAndLogger(fs *pflag.FlagSet) (*slog.Logger, error) {
	if err := flagsFromEnv(fs); err != nil {
		return nil, err
	}
	return newLogger(os.Stderr, f.logFormat, f.logLevel)
}
