package harness

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// MinIO is a single-drive MinIO server on 127.0.0.1, plain HTTP, with the root
// credentials AccessKey and SecretKey. Its objects survive Stop, Kill and Restart.
type MinIO struct {
	*Server
	AccessKey string
	SecretKey string

	consolePort int
}

// StartMinIO starts MinIO in a new temporary directory on a free port. The caller must
// Close it.
func StartMinIO() (*MinIO, error) {
	bin, err := minioBinary()
	if err != nil {
		return nil, err
	}
	dir, err := newServerDir("minio", nil)
	if err != nil {
		return nil, err
	}
	m := &MinIO{
		Server: &Server{
			name:         "minio",
			dir:          dir,
			stopSignal:   syscall.SIGTERM,
			readyTimeout: 120 * time.Second,
			logPath:      logPathIn(dir),
		},
		AccessKey: "palimpsest",
		SecretKey: "palimpsest-secret-key",
	}
	data := filepath.Join(dir, "data")
	m.command = func() *exec.Cmd {
		cmd := exec.Command(bin, "server",
			"--address", m.Endpoint(),
			"--console-address", net.JoinHostPort("127.0.0.1", strconv.Itoa(m.consolePort)),
			"--certs-dir", filepath.Join(dir, "certs"),
			"--quiet",
			data)
		cmd.Env = append(os.Environ(),
			"HOME="+dir, // MinIO keeps state under $HOME/.minio
			"MINIO_ROOT_USER="+m.AccessKey,
			"MINIO_ROOT_PASSWORD="+m.SecretKey,
			"MINIO_BROWSER=off",
			"MINIO_UPDATE=off",
			"MINIO_CI_CD=on",
		)
		return cmd
	}
	m.ready = m.ping
	err = startOnFreePort(m.Server, func() (err error) {
		if m.port, err = freePort(); err != nil {
			return err
		}
		m.consolePort, err = freePort()
		return err
	})
	if err != nil {
		_ = m.Close()
		return nil, err
	}
	return m, nil
}

// Endpoint is the server's host:port, as minio-go's minio.New takes it.
func (m *MinIO) Endpoint() string { return "127.0.0.1:" + strconv.Itoa(m.port) }

// URL is the server's base URL, as AWS SDKs take it (with path-style addressing).
func (m *MinIO) URL() string { return "http://" + m.Endpoint() }

// Client returns a minio-go client for the server with its root credentials.
func (m *MinIO) Client() (*minio.Client, error) {
	return minio.New(m.Endpoint(), &minio.Options{
		Creds:  credentials.NewStaticV4(m.AccessKey, m.SecretKey, ""),
		Secure: false,
	})
}

// ping asks the health endpoint, then makes a real S3 call: live answers before the
// object layer is up.
func (m *MinIO) ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.URL()+"/minio/health/live", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /minio/health/live: %s", resp.Status)
	}
	c, err := m.Client()
	if err != nil {
		return err
	}
	_, err = c.ListBuckets(ctx)
	return err
}

// NewBucket creates an empty bucket for the test and removes it, with its objects, on
// cleanup. It returns the bucket's name.
func (m *MinIO) NewBucket(t testing.TB) string {
	t.Helper()
	name := uniqueName(t, "-", 63)
	c, err := m.Client()
	if err != nil {
		t.Fatalf("harness: minio on %s: %v", m.Endpoint(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("harness: minio on %s: make bucket %q: %v", m.Endpoint(), name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.RemoveBucketWithOptions(ctx, name, minio.RemoveBucketOptions{ForceDelete: true}); err != nil {
			t.Logf("harness: minio on %s: remove bucket %q: %v", m.Endpoint(), name, err)
		}
	})
	return name
}
