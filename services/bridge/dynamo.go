package bridge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/palimpsest-editor/palimpsest/eventlog"
	"github.com/palimpsest-editor/palimpsest/schemas"
)

// DynamoConfig says where the DynamoDB table is.
type DynamoConfig struct {
	// Endpoint overrides the AWS endpoint (DynamoDB Local, dynalite). With
	// an endpoint and no AWS credentials in the environment, static dummy
	// credentials are used (local servers check no signatures).
	Endpoint string
	// Table is the table's name. Default "palimpsest-events".
	Table string
	// Region. Default: the AWS configuration's, else "us-east-1".
	Region string
	// Create makes the table (on-demand billing) when it does not exist.
	Create bool
	// Workers is how many documents are written at once. Default 16.
	Workers int
}

// Attribute names of an item: one event. The key is (documentId, sequence).
const (
	AttrDocumentID    = "documentId"    // S, partition key
	AttrSequence      = "sequence"      // N, sort key: the event's stream sequence
	AttrPrevSequence  = "prevSequence"  // N, the document's previous event (0: none)
	AttrType          = "type"          // S, "op"
	AttrSchemaVersion = "schemaVersion" // N
	AttrOpID          = "opId"          // S
	AttrSite          = "site"          // N
	AttrCounter       = "counter"       // N
	AttrAuthor        = "author"        // S, absent when empty
	AttrTime          = "time"          // S, RFC 3339, when the log appended it
	AttrPayload       = "payload"       // B, the CRDT op
	AttrOrigin        = "origin"        // S, absent for ops made in Palimpsest ("kafka" otherwise)
)

// DynamoSink mirrors events to a DynamoDB table, one item an event, with a
// conditional put (attribute_not_exists) so that writing an event again is a
// no-op: the key (documentId, sequence) is the idempotency key. DynamoDB
// sorts a document's items by sequence; the sink also writes each
// document's events one after another, in order, so a reader never sees a
// later event of a document without the earlier ones of the same batch.
// Documents are written in parallel.
type DynamoSink struct {
	db      *dynamodb.Client
	table   string
	workers int
}

// NewDynamoSink connects to DynamoDB and checks the table (creating it when
// c.Create is set). It waits until the table is ACTIVE.
func NewDynamoSink(ctx context.Context, c DynamoConfig) (*DynamoSink, error) {
	if c.Table == "" {
		c.Table = "palimpsest-events"
	}
	if c.Workers == 0 {
		c.Workers = 16
	}
	opts := []func(*config.LoadOptions) error{
		// The bridge retries a batch itself; the SDK only smooths blips,
		// and never refuses to retry because a quota ran out in an outage.
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxBackoff = time.Second
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	if c.Endpoint != "" && os.Getenv("AWS_ACCESS_KEY_ID") == "" && os.Getenv("AWS_PROFILE") == "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("palimpsest", "palimpsest", "")))
	}
	acfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("bridge: AWS configuration: %w", err)
	}
	if acfg.Region == "" {
		acfg.Region = "us-east-1"
	}
	db := dynamodb.NewFromConfig(acfg, func(o *dynamodb.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
	})
	s := &DynamoSink{db: db, table: c.Table, workers: c.Workers}
	if err := s.ensureTable(ctx, c.Create); err != nil {
		return nil, err
	}
	return s, nil
}

// Client returns the DynamoDB client (tests read the table with it).
func (s *DynamoSink) Client() *dynamodb.Client { return s.db }

func (s *DynamoSink) ensureTable(ctx context.Context, create bool) error {
	out, err := s.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.table)})
	var nf *types.ResourceNotFoundException
	switch {
	case errors.As(err, &nf) && create:
		_, err = s.db.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName: aws.String(s.table),
			AttributeDefinitions: []types.AttributeDefinition{
				{AttributeName: aws.String(AttrDocumentID), AttributeType: types.ScalarAttributeTypeS},
				{AttributeName: aws.String(AttrSequence), AttributeType: types.ScalarAttributeTypeN},
			},
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(AttrDocumentID), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(AttrSequence), KeyType: types.KeyTypeRange},
			},
			BillingMode: types.BillingModePayPerRequest,
		})
		var inUse *types.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) {
			return fmt.Errorf("bridge: create DynamoDB table %s: %w", s.table, err)
		}
		w := dynamodb.NewTableExistsWaiter(s.db, func(o *dynamodb.TableExistsWaiterOptions) { o.MinDelay = 100 * time.Millisecond })
		if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.table)}, 5*time.Minute); err != nil {
			return fmt.Errorf("bridge: DynamoDB table %s did not become active: %w", s.table, err)
		}
		return nil
	case errors.As(err, &nf):
		return fmt.Errorf("%w: DynamoDB table %s does not exist; create it (key documentId S, sequence N) or let the bridge (--create)", ErrMisconfigured, s.table)
	case err != nil:
		return fmt.Errorf("bridge: describe DynamoDB table %s: %w", s.table, err)
	}
	keys := map[string]types.KeyType{}
	for _, k := range out.Table.KeySchema {
		keys[aws.ToString(k.AttributeName)] = k.KeyType
	}
	if len(keys) != 2 || keys[AttrDocumentID] != types.KeyTypeHash || keys[AttrSequence] != types.KeyTypeRange {
		return fmt.Errorf("%w: DynamoDB table %s has key %v; the bridge needs documentId (HASH) and sequence (RANGE)", ErrMisconfigured, s.table, keys)
	}
	return nil
}

// Name is "dynamodb".
func (s *DynamoSink) Name() string { return "dynamodb" }

// Item returns the item that mirrors ev.
func Item(ev eventlog.Event) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		AttrDocumentID:    &types.AttributeValueMemberS{Value: ev.Doc},
		AttrSequence:      &types.AttributeValueMemberN{Value: strconv.FormatUint(ev.Seq, 10)},
		AttrPrevSequence:  &types.AttributeValueMemberN{Value: strconv.FormatUint(ev.PrevSeq, 10)},
		AttrType:          &types.AttributeValueMemberS{Value: ev.Type.String()},
		AttrSchemaVersion: &types.AttributeValueMemberN{Value: strconv.Itoa(schemas.EventVersion)},
		AttrOpID:          &types.AttributeValueMemberS{Value: ev.OpID},
		AttrSite:          &types.AttributeValueMemberN{Value: strconv.FormatUint(uint64(ev.Site), 10)},
		AttrCounter:       &types.AttributeValueMemberN{Value: strconv.FormatUint(uint64(ev.Counter), 10)},
		AttrTime:          &types.AttributeValueMemberS{Value: time.Unix(0, ev.Time).UTC().Format(time.RFC3339Nano)},
		AttrPayload:       &types.AttributeValueMemberB{Value: ev.Payload},
	}
	if ev.Author != "" {
		item[AttrAuthor] = &types.AttributeValueMemberS{Value: ev.Author}
	}
	if ev.Origin != "" {
		item[AttrOrigin] = &types.AttributeValueMemberS{Value: ev.Origin}
	}
	return item
}

// Write puts every event, documents in parallel, each document's events in
// order; a document stops at its first failure so its order holds.
func (s *DynamoSink) Write(ctx context.Context, events []eventlog.Event) (Written, error) {
	byDoc := map[string][]eventlog.Event{}
	var docs []string
	for _, ev := range events {
		if _, ok := byDoc[ev.Doc]; !ok {
			docs = append(docs, ev.Doc)
		}
		byDoc[ev.Doc] = append(byDoc[ev.Doc], ev)
	}
	var (
		mu    sync.Mutex
		w     Written
		first error
		wg    sync.WaitGroup
		next  = make(chan string)
	)
	for range min(s.workers, len(docs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for doc := range next {
				var n, already int
				var err error
				for _, ev := range byDoc[doc] {
					var fresh bool
					if fresh, err = s.put(ctx, ev); err != nil {
						break
					}
					if fresh {
						n++
					} else {
						already++
					}
				}
				mu.Lock()
				w.New += n
				w.Already += already
				if err != nil && first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	for _, doc := range docs {
		next <- doc
	}
	close(next)
	wg.Wait()
	return w, first
}

// put writes one event unless its item exists; fresh says it wrote it.
func (s *DynamoSink) put(ctx context.Context, ev eventlog.Event) (fresh bool, err error) {
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           aws.String(s.table),
		Item:                Item(ev),
		ConditionExpression: aws.String("attribute_not_exists(" + AttrDocumentID + ")"),
	})
	var cond *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &cond):
		return false, nil
	default:
		return false, fmt.Errorf("bridge: put event %d of document %q into %s: %w", ev.Seq, ev.Doc, s.table, err)
	}
}
