package harness_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/palimpsest-editor/palimpsest/internal/harness"
)

// fakeTB records how a harness function fails the test instead of failing this one.
type fakeTB struct {
	testing.TB
	fatal   string
	skipped bool
}

func (f *fakeTB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	panic(f)
}
func (f *fakeTB) Skip(...any)           { f.SkipNow() }
func (f *fakeTB) Skipf(string, ...any)  { f.SkipNow() }
func (f *fakeTB) SkipNow()              { f.skipped = true; panic(f) }
func (f *fakeTB) Cleanup(func())        {}
func (f *fakeTB) Helper()               {}
func (f *fakeTB) Logf(string, ...any)   {}
func (f *fakeTB) Errorf(string, ...any) { panic("unexpected Errorf") }
func (f *fakeTB) run(fn func(testing.TB)) {
	defer func() {
		if r := recover(); r != nil && r != any(f) {
			panic(r)
		}
	}()
	fn(f)
}

func TestMissingBinaryFailsWithInstructions(t *testing.T) {
	cases := []struct {
		name, env string
		start     func(testing.TB)
		direct    func() error
	}{
		{"postgres", "PALIMPSEST_POSTGRES_BIN",
			func(tb testing.TB) { harness.NewPostgres(tb) },
			func() error { _, err := harness.StartPostgres(); return err }},
		{"redis", "PALIMPSEST_REDIS_SERVER",
			func(tb testing.TB) { harness.NewRedis(tb) },
			func() error { _, err := harness.StartRedis(); return err }},
		{"minio", "PALIMPSEST_MINIO",
			func(tb testing.TB) { harness.NewMinIO(tb) },
			func() error { _, err := harness.StartMinIO(); return err }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(c.env, "/nonexistent/"+c.name)
			err := c.direct()
			if !errors.Is(err, harness.ErrNotInstalled) {
				t.Fatalf("Start with %s missing: %v, want ErrNotInstalled", c.name, err)
			}
			f := &fakeTB{TB: t}
			f.run(c.start)
			if f.skipped {
				t.Fatal("a missing server skipped the test")
			}
			if !strings.Contains(f.fatal, "go tool task deps") || !strings.Contains(f.fatal, "/nonexistent/"+c.name) {
				t.Fatalf("failure message %q should say where it looked and to run `go tool task deps`", f.fatal)
			}
			t.Log(f.fatal)
		})
	}
}
