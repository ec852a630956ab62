// Command schemagen writes package schemas' generated files. Run it from the
// schemas directory, as `go generate` does:
//
//	go generate ./schemas
package main

import (
	"fmt"
	"os"

	"github.com/palimpsest-editor/palimpsest/schemas/internal/schemagen"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
}

func run() error {
	schema, err := os.ReadFile("schema.json")
	if err != nil {
		return err
	}
	errs, err := os.ReadFile("errors.json")
	if err != nil {
		return err
	}
	files, err := schemagen.Generate(schema, errs)
	if err != nil {
		return err
	}
	for name, src := range files {
		if err := os.WriteFile(name, src, 0o644); err != nil {
			return err
		}
	}
	return nil
}
