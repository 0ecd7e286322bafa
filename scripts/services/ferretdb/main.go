// Command ferretdb-sqlite runs FerretDB v1 with its SQLite backend on a loopback address, so the
// tests have a real MongoDB-wire database without Docker. It is built from the Go module proxy by
// scripts/deps.sh (go install of FerretDB's own command panics: FerretDB issue #2982).
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on (loopback)")
	dir := flag.String("dir", "", "folder for the SQLite files (required)")
	flag.Parse()
	if *dir == "" {
		log.Fatal("ferretdb-sqlite: -dir is required")
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		log.Fatalf("ferretdb-sqlite: cannot create %s: %v", *dir, err)
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dir + "/",
	})
	if err != nil {
		log.Fatalf("ferretdb-sqlite: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Printf("ferretdb-sqlite: listening on %s, data in %s", *listen, *dir)
	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		log.Fatalf("ferretdb-sqlite: %v", err)
	}
}
