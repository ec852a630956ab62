// Command srchash prints the hash of web/dist's sources (package
// web/internal/srchash); npm run build writes it into dist/manifest.json. Run
// it from the module root: go run ./web/cmd/srchash [-v].
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/palimpsest-editor/palimpsest/web/internal/srchash"
)

func main() {
	verbose := flag.Bool("v", false, "list the files hashed")
	flag.Parse()
	if *verbose {
		files, err := srchash.Files(".")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for _, f := range files {
			fmt.Fprintln(os.Stderr, f)
		}
	}
	h, err := srchash.Hash(".")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(h)
}
