package harness_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/palimpsest-editor/palimpsest/internal/harness"
)

func TestDynaliteKeepsItemsAcrossKillAndRestart(t *testing.T) {
	t.Parallel()
	d := harness.NewDynalite(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	db := dynamodb.New(dynamodb.Options{
		BaseEndpoint: aws.String(d.Endpoint()),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("x", "y", ""),
	})
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("items"),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("k"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("k"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatal(err)
	}
	// dynalite creates tables asynchronously even with --createTableMs 0.
	if err := dynamodb.NewTableExistsWaiter(db).Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("items")}, time.Minute,
		func(o *dynamodb.TableExistsWaiterOptions) { o.MinDelay, o.MaxDelay = 20*time.Millisecond, time.Second }); err != nil {
		t.Fatal(err)
	}
	put := func(k string) error {
		_, err := db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:           aws.String("items"),
			Item:                map[string]types.AttributeValue{"k": &types.AttributeValueMemberS{Value: k}},
			ConditionExpression: aws.String("attribute_not_exists(k)"),
		})
		return err
	}
	if err := put("a"); err != nil {
		t.Fatal(err)
	}
	var cond *types.ConditionalCheckFailedException
	if err := put("a"); !errors.As(err, &cond) {
		t.Fatalf("second conditional put: %v, want ConditionalCheckFailedException", err)
	}
	has := func(step, k string) {
		t.Helper()
		eventually(t, step, func() error {
			out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("items"),
				Key: map[string]types.AttributeValue{"k": &types.AttributeValueMemberS{Value: k}}, ConsistentRead: aws.Bool(true)})
			if err != nil {
				return err
			}
			if out.Item == nil {
				t.Fatalf("%s: item %q is gone", step, k)
			}
			return nil
		})
	}
	if err := d.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := put("b"); err == nil {
		t.Fatal("put succeeded with the server killed")
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	has("after kill and start", "a")
	if err := put("b"); err != nil {
		t.Fatal(err)
	}
	if err := d.Restart(); err != nil {
		t.Fatal(err)
	}
	has("after restart", "b")
}

func TestDynaliteMissingFailsWithInstructions(t *testing.T) {
	t.Setenv("PALIMPSEST_DYNALITE", "/nonexistent/dynalite")
	if _, err := harness.StartDynalite(); !errors.Is(err, harness.ErrNotInstalled) {
		t.Fatalf("StartDynalite with dynalite missing: %v, want ErrNotInstalled", err)
	}
	f := &fakeTB{TB: t}
	f.run(func(tb testing.TB) { harness.NewDynalite(tb) })
	if f.skipped {
		t.Fatal("a missing server skipped the test")
	}
	if !strings.Contains(f.fatal, "go tool task deps") || !strings.Contains(f.fatal, "/nonexistent/dynalite") {
		t.Fatalf("failure message %q should say where it looked and to run `go tool task deps`", f.fatal)
	}
}
