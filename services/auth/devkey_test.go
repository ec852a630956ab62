package auth_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/palimpsest-editor/palimpsest/services/auth"
)

func TestDevKeyPersistsAcrossRestarts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	k1, created, err := auth.LoadOrCreateDevKey(dir)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreateDevKey: created=%v, %v", created, err)
	}
	fi, err := os.Stat(filepath.Join(dir, auth.DevKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %o, want 600", perm)
	}
	docs := auth.Docs{Read: []string{"*"}, Write: []string{"notes-*"}}
	tok, err := auth.IssueDevToken(k1, "dev", "Developer", docs, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	// "Restart": load the key again and verify the earlier token with it.
	k2, created, err := auth.LoadOrCreateDevKey(dir)
	if err != nil || created {
		t.Fatalf("second LoadOrCreateDevKey: created=%v, %v", created, err)
	}
	if k2.ID != k1.ID || !k2.Private.Equal(k1.Private) {
		t.Fatalf("reloaded key differs: %s vs %s", k2.ID, k1.ID)
	}
	v := newVerifier(t, auth.Config{Keys: []auth.Key{k2.VerifierKey()}, Issuer: auth.DevIssuer})
	p, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("dev token after restart: %v", err)
	}
	if p.Subject != "dev" || p.Name != "Developer" || p.Issuer != auth.DevIssuer || !p.CanWrite("notes-1") || p.CanWrite("other") || !p.CanRead("other") {
		t.Errorf("principal %+v", p)
	}
	if r := p.Remaining(time.Now()); r <= 59*time.Minute || r > time.Hour {
		t.Errorf("Remaining = %v, want about 1h", r)
	}

	// A different dev key does not verify it.
	other, err := auth.GenerateDevKey()
	if err != nil {
		t.Fatal(err)
	}
	if other.ID == k1.ID {
		t.Fatal("two generated keys share an ID")
	}
	v2 := newVerifier(t, auth.Config{Keys: []auth.Key{{Public: other.VerifierKey().Public}}})
	_, err = v2.Verify(context.Background(), tok)
	checkErr(t, err, auth.CodeBadSignature, tok)
}

// Processes starting at once end up with one key.
func TestDevKeyConcurrentCreate(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	ids := make([]string, n)
	var created int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k, c, err := auth.LoadOrCreateDevKey(dir)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			ids[i] = k.ID
			if c {
				created++
			}
		})
	}
	wg.Wait()
	if created != 1 {
		t.Errorf("%d callers created a key, want 1", created)
	}
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("keys differ: %q", ids)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Errorf("dir holds %d entries (%v), want only the key file", len(entries), err)
	}
}

func TestDevKeyErrors(t *testing.T) {
	bad := func(data []byte) string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, auth.DevKeyFile), data, 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	rsaPEM := publicPEM(t, testKeys(t).rsa)
	for name, dir := range map[string]string{
		"not PEM":        bad([]byte("hello")),
		"public key PEM": bad(rsaPEM),
		"garbage DER":    bad([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")),
	} {
		_, _, err := auth.LoadOrCreateDevKey(dir)
		if auth.CodeOf(err) != auth.CodeBadConfig {
			t.Errorf("%s: %v, want %s", name, err, auth.CodeBadConfig)
		}
	}

	k, err := auth.GenerateDevKey()
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func() (string, error){
		"nil key":      func() (string, error) { return auth.IssueDevToken(nil, "dev", "", auth.Docs{}, time.Hour) },
		"no subject":   func() (string, error) { return auth.IssueDevToken(k, "", "", auth.Docs{}, time.Hour) },
		"zero ttl":     func() (string, error) { return auth.IssueDevToken(k, "dev", "", auth.Docs{}, 0) },
		"negative ttl": func() (string, error) { return auth.IssueDevToken(k, "dev", "", auth.Docs{}, -time.Second) },
	} {
		if tok, err := f(); tok != "" || auth.CodeOf(err) != auth.CodeBadConfig {
			t.Errorf("%s: %q, %v", name, tok, err)
		}
	}
}
