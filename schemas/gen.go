package schemas

// The Go code of events and error codes is generated from schema.json and
// errors.json; TestGeneratedUpToDate fails when the committed output is stale.
//go:generate go run ./internal/schemagen/cmd/schemagen
