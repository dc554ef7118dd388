// Command chatbench measures a socket.io chat server that speaks chatd's
// protocol (chatd itself, the Node peer in bench/node-peer, or the minimal
// socket.io server in bench/node-min, with -session=false). It speaks
// Engine.IO v4 / socket.io v5 over WebSocket itself, with one reading
// goroutine per connection and precomputed frames, so that it stays cheap
// next to the server it measures.
//
// Scenarios:
//
//	chatbench idle      N connections, each in a room: server RSS and goroutines per connection
//	chatbench fanout    R rooms of M members, messages at a fixed total rate: deliveries/s,
//	                    latency from send to receipt, lost and duplicated deliveries
//	chatbench capacity  the highest rate whose p99 latency stays under a bound with nothing lost
//	chatbench storm     connects per second, raised step by step until errors or a slow p99
//	chatbench soak      users connect, chat and leave at a steady rate for minutes: memory,
//	                    goroutines and Redis sampled every 10 s must end flat
//	chatbench compare   reads result lines and prints the ratios of two labels
//
// Several -target URLs spread the connections over the instances of a
// cluster (round robin), which makes fanout a cluster fan-out. Progress goes
// to stderr; each run prints one JSON result line to stdout. Targets must
// be loopback addresses; every run is bounded by -timeout.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chatbench:", err)
		os.Exit(exitCode(err))
	}
}

// errUsage marks a bad command line (exit code 2).
var errUsage = errors.New("usage")

func exitCode(err error) int {
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

const usageText = `usage: chatbench <scenario> [flags]

scenarios:
  idle       N connections, each in a room; server RSS and goroutines per connection
  fanout     R rooms of M members, messages at a fixed rate; deliveries/s, latency, losses
  capacity   highest rate with p99 latency at most -p99 and nothing lost
  storm      connects per second until errors or p99 connect time passes -connect-p99
  soak       users connect, chat and leave for minutes; memory, goroutines, Redis must stay flat
  compare    read result lines (files or stdin) and print the ratios of two labels

Run "chatbench <scenario> -h" for its flags.
`

// run is chatbench's whole program.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return fmt.Errorf("%w: name a scenario", errUsage)
	}
	name, args := args[0], args[1:]
	switch name {
	case "idle", "fanout", "capacity", "storm", "soak":
		o, err := parseFlags(name, args, stderr)
		if err != nil || o == nil {
			return err
		}
		return runScenario(ctx, o, stdout, stderr)
	case "compare":
		return runCompare(args, os.Stdin, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usageText)
		return nil
	default:
		fmt.Fprint(stderr, usageText)
		return fmt.Errorf("%w: unknown scenario %q (idle, fanout, capacity, storm, soak, compare)", errUsage, name)
	}
}
