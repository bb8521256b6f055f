// Command leaderboard serves the community leaderboard's own HTTP handlers, from
// github.com/livepeer/leaderboard-serverless v1.0.0 (the one version the Go module proxy serves
// whole), so that lpt's `reports` crate can publish to and read back from the real server code
// in its integration test (tester/tests/leaderboard_serverless.rs).
//
// Routes are the project's: /api/post_stats, /api/aggregated_stats, /api/raw_stats. The store is
// leaderboard-serverless's PostgreSQL one, which reads its connection string from POSTGRES and
// creates its tables itself; the HMAC secret is read from SECRET by the handlers. Both must be
// set. The store is opened before listening, so the one line printed on stdout,
//
//	{"event":"ready","addr":"127.0.0.1:PORT","leaderboard_serverless":"v1.0.0"}
//
// means requests can be served. SIGTERM or SIGINT shuts the server down and exits 0.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	handler "github.com/livepeer/leaderboard-serverless/api"
	"github.com/livepeer/leaderboard-serverless/db"
)

const upstream = "github.com/livepeer/leaderboard-serverless"

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "loopback host:port to serve on (port 0 picks a free one)")
	flag.Parse()
	if err := run(*listen); err != nil {
		fmt.Fprintf(os.Stderr, "leaderboard: %v\n", err)
		os.Exit(1)
	}
}

func run(listen string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("-listen %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen %q: not a loopback IP address", listen)
	}
	for _, name := range []string{"POSTGRES", "SECRET"} {
		if os.Getenv(name) == "" {
			return fmt.Errorf("environment variable %s is not set", name)
		}
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)

	// Opens the store the handlers use (db.Store) and creates its tables, so that readiness
	// means the database answers.
	if err := db.CacheDB(); err != nil {
		return fmt.Errorf("opening the PostgreSQL store: %w", err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/api/post_stats", handler.PostStatsHandler)
	mux.HandleFunc("/api/aggregated_stats", handler.AggregatedStatsHandler)
	mux.HandleFunc("/api/raw_stats", handler.RawStatsHandler)

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	ready, err := json.Marshal(map[string]string{
		"event":                  "ready",
		"addr":                   ln.Addr().String(),
		"leaderboard_serverless": upstreamVersion(),
	})
	if err != nil {
		return err
	}
	fmt.Println(string(ready))

	select {
	case err := <-served:
		return err
	case <-stop:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// upstreamVersion is the leaderboard-serverless version this binary was built with.
func upstreamVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == upstream {
				return dep.Version
			}
		}
	}
	return "unknown"
}
