// Command chatd is a self-hosted chat server that socket.io v4 clients talk
// to. Run it with no arguments to serve; see README.md for its settings.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chatd:", err)
		os.Exit(exitCode(err))
	}
}
