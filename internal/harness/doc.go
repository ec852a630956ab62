// Package harness starts real servers for tests: PostgreSQL, Redis and MinIO, each on a
// free random loopback port, with its data in a fresh temporary directory, stopped and
// removed afterwards. The binaries come from `go tool task deps` (scripts/deps.sh); a
// missing binary is a test failure that says to run it, never a skip.
//
// A test that needs its own server, because it restarts or kills it, starts one:
//
//	pg := harness.NewPostgres(t)      // stopped and removed by t.Cleanup
//	pool, _ := pgxpool.New(ctx, pg.DSN())
//	...
//	pg.Kill()                         // SIGKILL the server and its children: a crash
//	pg.Start()                        // same port, same data: crash recovery runs
//
// Tests that only need a clean place share one server per test binary, started on first
// use and stopped when the tests end; each test gets its own database, Redis database
// index or bucket. The package's TestMain must call Main:
//
//	func TestMain(m *testing.M) { harness.Main(m) }
//
//	func TestX(t *testing.T) {
//		dsn := harness.SharedPostgres(t).NewDatabase(t)
//		addr, db := harness.SharedRedis(t).Addr(), harness.SharedRedis(t).NewDB(t)
//		bucket := harness.SharedMinIO(t).NewBucket(t)
//	}
//
// Shared servers must not be stopped, killed or restarted by a test.
//
// Outside tests (a TestMain, a load generator) StartPostgres, StartRedis and StartMinIO
// return the same servers; the caller must Close them.
//
// Every server is started with Setpgid and a parent-death signal (SIGKILL), so a test
// binary that dies without cleaning up takes its servers with it; only their temporary
// directories are left behind in os.TempDir().
//
// Binaries are found as follows, each overridable by an environment variable:
//
//	PostgreSQL  $PALIMPSEST_POSTGRES_BIN (a directory), else the highest
//	            /usr/lib/postgresql/*/bin, else initdb on PATH. As root, initdb and
//	            postgres run as the user "postgres".
//	Redis       $PALIMPSEST_REDIS_SERVER, else redis-server on PATH or in /usr/bin.
//	MinIO       $PALIMPSEST_MINIO, else minio in $PALIMPSEST_BIN_DIR (default
//	            os.UserCacheDir()/palimpsest/bin, where scripts/deps.sh builds it),
//	            else minio on PATH.
package harness
