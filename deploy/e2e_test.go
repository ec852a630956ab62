package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dynamotypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/palimpsest-editor/palimpsest/client"
	"github.com/palimpsest-editor/palimpsest/internal/harness"
)

// natsNode is one nats-server process of the cluster, started with deploy/nats/nats-server.conf
// and the environment compose.yaml gives it; only the ports differ (flags), so three nodes fit
// on loopback.
type natsNode struct {
	*proc
	name                           string
	clientPort, routePort, monPort int
}

func (n *natsNode) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.clientPort) }

// healthz is compose's health check of a NATS node: GET /healthz on the monitoring port.
func (n *natsNode) healthz(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/healthz", n.monPort), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/healthz: %s %s", resp.Status, body)
	}
	return nil
}

func startNATSCluster(t *testing.T, bin, dir string) []*natsNode {
	t.Helper()
	conf := filepath.Join(repoRoot(t), "deploy", "nats", "nats-server.conf")
	ports := harness.FreePorts(t, 3*natsNodes)
	var nodes []*natsNode
	var routes []string
	for i := range natsNodes {
		n := &natsNode{name: fmt.Sprintf("nats-%d", i+1), clientPort: ports[3*i], routePort: ports[3*i+1], monPort: ports[3*i+2]}
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", n.routePort))
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		store := filepath.Join(dir, n.name)
		if err := os.MkdirAll(store, 0o755); err != nil {
			t.Fatal(err)
		}
		env := append(baseEnv(),
			"NATS_SERVER_NAME="+n.name,
			"NATS_ROUTES=["+strings.Join(routes, ", ")+"]",
			"NATS_STORE_DIR="+store)
		args := []string{"-c", conf, "-a", "127.0.0.1", "-p", fmt.Sprint(n.clientPort), "-m", fmt.Sprint(n.monPort),
			"--cluster", fmt.Sprintf("nats://127.0.0.1:%d", n.routePort)}
		n.proc = newProc(t, n.name, bin, args, env, dir)
		n.start(t)
	}
	for _, n := range nodes {
		n.waitHealthy(t, 60*time.Second, n.healthz)
	}
	return nodes
}

// TestEndToEnd starts the system as compose.yaml wires it, every part a real process: three
// nats-server nodes with deploy/nats/nats-server.conf, PostgreSQL, MinIO and Redis, and each
// Palimpsest service from wiring_test.go as its own `palimpsest <subcommand>` configured by
// PALIMPSEST_* variables only, each waited for with its compose health check. Two editors
// edit a document through the gateway; the stream's leader node is SIGKILLed mid-edit; the
// editing goes on, and the projector's Postgres state and Redis read model end with the
// editors' text. The killed node comes back and catches up.
func TestEndToEnd(t *testing.T) {
	palimpsest, natsServer := buildBinaries(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()

	nodes := startNATSCluster(t, natsServer, dir)
	var natsURLs []string
	for _, n := range nodes {
		natsURLs = append(natsURLs, n.url())
	}
	pg, rd, mn := harness.NewPostgres(t), harness.NewRedis(t), harness.NewMinIO(t)
	// Kafka is kfake (franz-go's in-process broker on a loopback port) and DynamoDB is dynalite:
	// the bridge process talks to them over the network like to the real ones.
	kafka, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kafka.Close)
	dyn := harness.NewDynalite(t)
	dsn, err := pg.CreateDatabase(ctx, "palimpsest")
	if err != nil {
		t.Fatal(err)
	}

	// What each variable is here; compose.yaml and k8s/ give the same variables other values.
	values := map[string]string{
		envNATS:      strings.Join(natsURLs, ","),
		envLogFormat: "json",
		envPostgres:  dsn,
		envS3:        fmt.Sprintf("http://%s:%s@%s/palimpsest", mn.AccessKey, mn.SecretKey, mn.Endpoint()),
		envRedis:     "redis://" + rd.Addr() + "/0",
		envData:      filepath.Join(dir, "gateway-data"),
		envKafka:     strings.Join(kafka.ListenAddrs(), ","),
		envDynamoDB:  dyn.Endpoint(),
	}
	// Test tuning that no deployment sets: snapshots after a few ops, so S3 gets some.
	extra := map[string][]string{"projector": {"PALIMPSEST_SNAPSHOT_EVERY=10"}}

	running := map[string]*proc{}
	addrs := map[string]string{}
	var missing []string
	for _, s := range services {
		if _, ok := subcommandFlags(t, palimpsest, s.Args); !ok {
			missing = append(missing, strings.Join(s.Args, " "))
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", harness.FreePorts(t, 1)[0])
		env := append(baseEnv(), s.AddrEnv+"="+addr)
		for _, k := range s.Env {
			v, ok := values[k]
			if !ok {
				t.Fatalf("wiring: the end-to-end test has no value for %s, which %s needs", k, s.Name)
			}
			env = append(env, k+"="+v)
		}
		for _, k := range s.Optional {
			if v, ok := values[k]; ok {
				env = append(env, k+"="+v)
			}
		}
		// As compose.yaml's shared volume dev-keys: read trusts the development key serve
		// made (started after the gateway is healthy, as compose's depends_on says).
		env = append(env, extra[s.Name]...)
		p := newProc(t, s.Name, palimpsest, s.Args, env, dir)
		p.start(t)
		p.waitHealthy(t, 60*time.Second, probeCheck(palimpsest, "http://"+addr+s.Ready))
		running[s.Name], addrs[s.Name] = p, addr
	}
	if len(missing) > 0 {
		t.Logf("not started, the binary has no such subcommand yet: %s", strings.Join(missing, ", "))
	}
	if running["gateway"] == nil {
		t.Fatal("no gateway: `palimpsest serve` is missing")
	}
	token := devToken(t, running["gateway"])
	wsURL := "ws://" + addrs["gateway"] + "/v1/ws"
	const doc = "e2e-compose-wiring"

	open := func(name string) *client.Client {
		c, err := client.Open(client.Config{URL: wsURL, Doc: doc, Token: client.StaticToken(token), MaxBackoff: 500 * time.Millisecond})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.WaitConnected(ctx); err != nil {
			t.Fatalf("%s: connect: %v (%v)", name, err, c.Err())
		}
		return c
	}
	alice := open("alice")
	typeText(t, ctx, alice, "Palimpsest: ")
	bob := open("bob")
	typeText(t, ctx, alice, "written over many times, ")
	typeText(t, ctx, bob, "and every layer can still be read.")
	waitSame(t, ctx, alice, bob)

	// Kill the node that leads the stream: a power cut. R3 elects a new leader; the gateway
	// and projector reconnect to the other nodes.
	leader := streamLeader(t, ctx, natsURLs)
	victim := nodes[slices.IndexFunc(nodes, func(n *natsNode) bool { return n.name == leader })]
	victim.kill()
	t.Logf("killed %s, the stream leader", victim.name)
	for i := range 10 {
		typeText(t, ctx, alice, fmt.Sprintf(" [%d]", i))
	}
	typeText(t, ctx, bob, " The end.")
	waitSame(t, ctx, alice, bob)
	want := alice.Text()

	if running["projector"] != nil {
		waitProjected(t, ctx, dsn, rd.Addr(), doc, want)
		checkSnapshots(t, ctx, mn, doc)
	} else {
		t.Log("no projector: the Postgres, Redis and S3 projections are not checked")
	}
	if a, ok := addrs["read"]; ok {
		waitRead(t, ctx, "http://"+a+"/v1/documents/"+doc, token, want)
	}
	if running["bridge"] != nil {
		n := docEvents(t, ctx, natsURLs, doc)
		waitMirrored(t, ctx, kafka.ListenAddrs(), dyn.Endpoint(), doc, n)
	}

	// The killed node comes back with its volume and catches up; editing goes on.
	victim.start(t)
	victim.waitHealthy(t, 60*time.Second, victim.healthz)
	typeText(t, ctx, alice, " Restored.")
	waitSame(t, ctx, alice, bob)
	if running["projector"] != nil {
		waitProjected(t, ctx, dsn, rd.Addr(), doc, alice.Text())
	}
	checkStreamReplicas(t, ctx, natsURLs)

	// Observability as deployed: JSON logs, Prometheus metrics.
	for name, p := range running {
		checkJSONLogs(t, name, p)
	}
	checkMetrics(t, ctx, "http://"+addrs["gateway"]+"/metrics", "palimpsest_gateway_ops_appended_total")
	if a, ok := addrs["projector"]; ok {
		checkMetrics(t, ctx, "http://"+a+"/metrics", "palimpsest_projector_events_total")
	}
}

// devToken reads the development token serve prints on stdout when no identity provider is
// configured (compose.yaml's gateway: `docker compose logs gateway`).
func devToken(t *testing.T, gateway *proc) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sc := bufio.NewScanner(strings.NewReader(gateway.tail("stdout", 1<<16)))
		after := false
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if after && line != "" {
				return line
			}
			after = after || strings.Contains(line, "dev token")
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway printed no dev token:\n%s", gateway.tail("stdout", 4096))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// typeText appends text at the end of c's document and waits until the log acknowledged it.
func typeText(t *testing.T, ctx context.Context, c *client.Client, text string) {
	t.Helper()
	if _, err := c.Insert(c.Len(), text); err != nil {
		t.Fatalf("insert %q: %v", text, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := c.WaitSynced(wctx); err != nil {
		t.Fatalf("insert %q not acknowledged: %v (client error: %v)", text, err, c.Err())
	}
}

// waitSame waits until both editors show the same text.
// waitSame waits for the two editors to hold the same text. After a stream leader is killed on
// a loaded 2-core machine, the election and the gateway's consumers' recovery took over 30 s
// once (the whole test suite running beside it), hence the margin.
func waitSame(t *testing.T, ctx context.Context, a, b *client.Client) {
	t.Helper()
	eventually(t, ctx, 90*time.Second, func() error {
		if at, bt := a.Text(), b.Text(); at != bt {
			return fmt.Errorf("editors differ:\n  %q (seq %d, %d pending, connected %v, err %v)\n  %q (seq %d, %d pending, connected %v, err %v)",
				at, a.Seq(), a.Pending(), a.Connected(), a.Err(), bt, b.Seq(), b.Pending(), b.Connected(), b.Err())
		}
		return nil
	})
}

func eventually(t *testing.T, ctx context.Context, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stream returns the event log's stream as a client sees it.
func stream(t *testing.T, ctx context.Context, urls []string) *jetstream.StreamInfo {
	t.Helper()
	nc, err := nats.Connect(strings.Join(urls, ","), nats.RetryOnFailedConnect(false))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var info *jetstream.StreamInfo
	eventually(t, ctx, 30*time.Second, func() error {
		s, err := js.Stream(ctx, "PALIMPSEST")
		if err != nil {
			return err
		}
		if info, err = s.Info(ctx); err != nil {
			return err
		}
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return fmt.Errorf("stream PALIMPSEST has no leader yet")
		}
		return nil
	})
	return info
}

func streamLeader(t *testing.T, ctx context.Context, urls []string) string {
	t.Helper()
	info := stream(t, ctx, urls)
	if info.Config.Replicas != natsNodes {
		t.Fatalf("stream PALIMPSEST has %d replicas, want %d: a node's loss would lose the log", info.Config.Replicas, natsNodes)
	}
	return info.Cluster.Leader
}

// checkStreamReplicas checks that every replica of the stream is current again.
func checkStreamReplicas(t *testing.T, ctx context.Context, urls []string) {
	t.Helper()
	eventually(t, ctx, 30*time.Second, func() error {
		info := stream(t, ctx, urls)
		if len(info.Cluster.Replicas) != natsNodes-1 {
			return fmt.Errorf("leader %s has %d peers, want %d", info.Cluster.Leader, len(info.Cluster.Replicas), natsNodes-1)
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Offline {
				return fmt.Errorf("replica %s is not current (lag %d, offline %v)", r.Name, r.Lag, r.Offline)
			}
		}
		return nil
	})
}

// waitProjected waits until the projector's PostgreSQL state and Redis read model hold text.
func waitProjected(t *testing.T, ctx context.Context, dsn, redisAddr, doc, text string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rc := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rc.Close()
	eventually(t, ctx, 60*time.Second, func() error {
		var got string
		var version int64
		err := conn.QueryRow(ctx, `SELECT version, convert_from(text_utf8, 'UTF8') FROM documents WHERE doc = $1`, doc).Scan(&version, &got)
		if err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		if got != text {
			return fmt.Errorf("postgres has version %d %q, want %q", version, got, text)
		}
		cached, err := rc.HGet(ctx, "palimpsest:doc:"+doc, "t").Result()
		if err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		if cached != text {
			return fmt.Errorf("redis has %q, want %q", cached, text)
		}
		return nil
	})
}

// checkSnapshots checks that the projector wrote the document's snapshots to S3 (MinIO).
func checkSnapshots(t *testing.T, ctx context.Context, mn *harness.MinIO, doc string) {
	t.Helper()
	mc, err := mn.Client()
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, 30*time.Second, func() error {
		n := 0
		for obj := range mc.ListObjects(ctx, "palimpsest", minio.ListObjectsOptions{Prefix: doc + "/", Recursive: true}) {
			if obj.Err != nil {
				return obj.Err
			}
			n++
		}
		if n == 0 {
			return fmt.Errorf("no snapshot of %s in bucket palimpsest", doc)
		}
		return nil
	})
}

// checkJSONLogs checks that a service logged, and only JSON lines (PALIMPSEST_LOG_FORMAT=json).
func checkJSONLogs(t *testing.T, name string, p *proc) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(p.logDir, p.name+".stderr"))
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	for line := range strings.Lines(string(data)) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("%s logged a line that is not JSON: %q", name, line)
			return
		}
		if _, ok := rec["level"]; !ok {
			t.Errorf("%s logged JSON without a level: %q", name, line)
		}
		lines++
	}
	if lines == 0 {
		t.Errorf("%s logged nothing", name)
	}
}

func checkMetrics(t *testing.T, ctx context.Context, url, metric string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), metric) {
		t.Errorf("%s: %s, want a Prometheus exposition with %s", url, resp.Status, metric)
	}
}

// waitRead waits until the read API serves the document's text (the same token as the
// editors', in an Authorization header).
func waitRead(t *testing.T, ctx context.Context, url, token, text string) {
	t.Helper()
	eventually(t, ctx, 30*time.Second, func() error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var d struct {
			Text string `json:"text"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &d) != nil {
			return fmt.Errorf("GET %s: %s %s", url, resp.Status, body)
		}
		if d.Text != text {
			return fmt.Errorf("read API has %q, want %q", d.Text, text)
		}
		return nil
	})
}

// docEvents counts the events of doc in the log.
func docEvents(t *testing.T, ctx context.Context, urls []string, doc string) int {
	t.Helper()
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, "PALIMPSEST")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter("palimpsest.p.*.doc."+doc))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	if n == 0 {
		t.Fatalf("no events of %s in the log", doc)
	}
	return n
}

// waitMirrored waits until the bridge has put every event of doc in DynamoDB (one item per
// event: the conditional put makes it exactly once) and at least as many records with key doc
// in Kafka topic new-event (the idempotent producer).
func waitMirrored(t *testing.T, ctx context.Context, brokers []string, dynamoEndpoint, doc string, events int) {
	t.Helper()
	db := dynamodb.New(dynamodb.Options{BaseEndpoint: aws.String(dynamoEndpoint), Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("x", "y", "")})
	kc, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("new-event"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	records := 0
	eventually(t, ctx, 60*time.Second, func() error {
		out, err := db.Query(ctx, &dynamodb.QueryInput{TableName: aws.String("palimpsest-events"),
			KeyConditionExpression:    aws.String("documentId = :d"),
			ExpressionAttributeValues: map[string]dynamotypes.AttributeValue{":d": &dynamotypes.AttributeValueMemberS{Value: doc}},
			Select:                    dynamotypes.SelectCount, ConsistentRead: aws.Bool(true)})
		if err != nil {
			return fmt.Errorf("dynamodb: %w", err)
		}
		if int(out.Count) != events {
			return fmt.Errorf("dynamodb has %d items of %s, want %d", out.Count, doc, events)
		}
		fctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		kc.PollFetches(fctx).EachRecord(func(r *kgo.Record) {
			if string(r.Key) == doc {
				records++
			}
		})
		if records < events {
			return fmt.Errorf("kafka has %d records of %s, want %d", records, doc, events)
		}
		return nil
	})
}
