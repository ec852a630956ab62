package harness_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/palimpsest-editor/palimpsest/internal/harness"
)

func TestMinIORestartKeepsObjectsAndClientReconnects(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	m := harness.NewMinIO(t)
	// A client built the way an adapter would, not with m.Client.
	c, err := minio.New(m.Endpoint(), &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.MakeBucket(ctx, "snapshots", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	put := func(key string, body []byte) {
		t.Helper()
		if _, err := c.PutObject(ctx, "snapshots", key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	wantObject := func(step, key string, want []byte) {
		t.Helper()
		eventually(t, step, func() error {
			got, err := getObject(ctx, c, "snapshots", key)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: %s = %q, want %q", step, key, got, want)
			}
			return nil
		})
	}
	put("doc-1/0001", []byte("snapshot one"))
	wantObject("before restart", "doc-1/0001", []byte("snapshot one"))

	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	wantObject("after restart", "doc-1/0001", []byte("snapshot one"))

	put("doc-1/0002", []byte("snapshot two"))
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	wantObject("after kill and start", "doc-1/0002", []byte("snapshot two"))
}

func getObject(ctx context.Context, c *minio.Client, bucket, key string) ([]byte, error) {
	obj, err := c.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	return io.ReadAll(obj)
}

func TestSharedMinIOBuckets(t *testing.T) {
	t.Parallel()
	m := harness.SharedMinIO(t)
	a, b := m.NewBucket(t), m.NewBucket(t)
	if a == b {
		t.Fatalf("two buckets named %q", a)
	}
	c, err := m.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	body := []byte("x")
	if _, err := c.PutObject(ctx, a, "k", bytes.NewReader(body), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := getObject(ctx, c, a, "k"); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("get from %s: %q, %v", a, got, err)
	}
	if _, err := getObject(ctx, c, b, "k"); err == nil {
		t.Fatalf("object written to %s is visible in %s", a, b)
	}
}
