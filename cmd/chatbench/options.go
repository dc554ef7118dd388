package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// options are a scenario's settings, from its flags.
type options struct {
	scenario string

	targets  []string // base URLs, http://127.0.0.1:port
	pids     []int    // server processes, for RSS and CPU
	metrics  []string // Prometheus URLs, for go_goroutines
	label    string   // names the server in the result, such as "chatd" or "node"
	timeout  time.Duration
	dialConc int  // handshakes in flight while setting up
	session  bool // wait for chatd's session event after CONNECT
	sources  int  // loopback source addresses connections are spread over

	// idle
	conns  int
	settle time.Duration

	// fanout and capacity
	rooms     int
	members   int
	rate      float64 // messages per second, all rooms together
	duration  time.Duration
	warmup    time.Duration
	textBytes int
	drain     time.Duration

	// fanout and capacity: the Redis servers whose CPU, commands and
	// bytes are measured per step
	redisNodes []string

	// capacity
	p99       time.Duration
	maxRate   float64
	precision float64
	maxSteps  int

	// storm
	factor     float64
	step       time.Duration
	connectP99 time.Duration
	maxConns   int
	cooldown   time.Duration

	// soak
	report time.Duration // sampling interval
	redis  string        // host:port whose INFO memory is sampled; "" skips
}

// parseFlags parses a scenario's flags; it returns nil, nil after -h.
func parseFlags(scenario string, args []string, stderr io.Writer) (*options, error) {
	o := &options{scenario: scenario}
	fs := flag.NewFlagSet("chatbench "+scenario, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var targets, pids, metrics string
	fs.StringVar(&targets, "target", "http://127.0.0.1:3000", "comma-separated base URLs of the server instances (loopback only); connections are spread over them")
	fs.StringVar(&pids, "pid", "", "comma-separated process ids of the server instances, to read RSS and CPU from /proc")
	fs.StringVar(&metrics, "metrics", "auto", `comma-separated Prometheus URLs to read go_goroutines from; "auto" tries <target>/metrics, "" skips`)
	fs.StringVar(&o.label, "label", "", `names the server in the result line, such as "chatd" or "node"`)
	fs.DurationVar(&o.timeout, "timeout", 15*time.Minute, "hard limit of the whole run")
	fs.IntVar(&o.dialConc, "dial-concurrency", 64, "handshakes in flight while connections are set up")
	fs.BoolVar(&o.session, "session", true, "wait for chatd's session event after the socket.io CONNECT; false: the CONNECT answer is enough (servers that send no session event, such as bench/node-min)")
	fs.IntVar(&o.sources, "sources", 1, "loopback source addresses (127.0.0.1, 127.0.0.2, ...) the connections are spread over; one address reaches one server port about 28,000 times (net.ipv4.ip_local_port_range)")

	switch scenario {
	case "idle":
		fs.IntVar(&o.conns, "conns", 5000, "connections to hold")
		fs.IntVar(&o.members, "members", 20, "connections per room")
		fs.DurationVar(&o.settle, "settle", 5*time.Second, "wait after the last join before RSS is read")
	case "fanout", "capacity":
		fs.IntVar(&o.rooms, "rooms", 100, "rooms")
		fs.IntVar(&o.members, "members", 20, "members (connections) per room")
		fs.Float64Var(&o.rate, "rate", 500, "messages per second over all rooms (capacity: the first rate tried)")
		fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "sending time before latency is recorded")
		fs.IntVar(&o.textBytes, "text-bytes", 64, "message text length in bytes (at least the 40 of the timestamp and ids)")
		fs.DurationVar(&o.drain, "drain", 10*time.Second, "longest wait for acks and deliveries after the last send")
		fs.Func("redis-nodes", `comma-separated host:port of the Redis servers the instances use (one Redis, or a Redis Cluster's masters; loopback only): each step reports their CPU, commands and network bytes per message`, func(v string) error {
			o.redisNodes = nil
			for a := range strings.SplitSeq(v, ",") {
				if a = strings.TrimSpace(a); a == "" {
					continue
				}
				if err := checkLoopbackAddr(a); err != nil {
					return err
				}
				o.redisNodes = append(o.redisNodes, a)
			}
			return nil
		})
		if scenario == "fanout" {
			fs.DurationVar(&o.duration, "duration", 20*time.Second, "measured sending time, after -warmup")
			fs.DurationVar(&o.settle, "settle", 5*time.Second, "wait after the connections closed and the server's goroutines returned to their baseline before its memory is read again")
		} else {
			fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured sending time of each step, after -warmup")
			fs.DurationVar(&o.p99, "p99", 100*time.Millisecond, "a rate passes when its p99 latency is at most this and nothing is lost")
			fs.Float64Var(&o.maxRate, "max-rate", 50000, "highest rate tried, in messages per second")
			fs.Float64Var(&o.precision, "precision", 0.1, "stop when the failing rate is within this fraction above the passing one")
			fs.IntVar(&o.maxSteps, "max-steps", 10, "most rates tried")
		}
	case "storm":
		fs.Float64Var(&o.rate, "rate", 100, "connects per second of the first step")
		fs.Float64Var(&o.factor, "factor", 1.5, "rate multiplier from one step to the next")
		fs.DurationVar(&o.step, "step", 2*time.Second, "length of each step")
		fs.DurationVar(&o.connectP99, "connect-p99", time.Second, "a step passes when its p99 connect time is at most this and no connect failed")
		fs.Float64Var(&o.maxRate, "max-rate", 10000, "highest rate tried, in connects per second")
		fs.IntVar(&o.maxSteps, "max-steps", 15, "most steps")
		fs.IntVar(&o.maxConns, "max-conns", 15000, "most connections one step may open (they stay open until the step ends)")
		fs.DurationVar(&o.cooldown, "cooldown", 2*time.Second, "pause between steps, after the step's connections are closed")
	case "soak":
		fs.IntVar(&o.rooms, "rooms", 50, "rooms, each watched by one resident member")
		fs.Float64Var(&o.rate, "rate", 20, "short-lived users per second (each connects, joins, writes, leaves, disconnects)")
		fs.DurationVar(&o.duration, "duration", 3*time.Minute, "how long users keep coming")
		fs.DurationVar(&o.warmup, "warmup", time.Minute, "samples before this are left out of the flatness verdict (caches and history fill up first)")
		fs.DurationVar(&o.report, "report", 10*time.Second, "sampling interval of RSS, heap, goroutines and Redis memory")
		fs.StringVar(&o.redis, "redis", "127.0.0.1:6379", `Redis host:port whose memory and keys are sampled (loopback only); "" skips`)
		fs.DurationVar(&o.drain, "drain", 10*time.Second, "longest wait for the last deliveries after the last user left")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	var err error
	if o.targets, err = parseTargets(targets); err != nil {
		return nil, fmt.Errorf("%w: -target: %w", errUsage, err)
	}
	if o.pids, err = parsePIDs(pids); err != nil {
		return nil, fmt.Errorf("%w: -pid: %w", errUsage, err)
	}
	switch metrics {
	case "auto":
		for _, t := range o.targets {
			o.metrics = append(o.metrics, strings.TrimSuffix(t, "/")+"/metrics")
		}
	case "":
	default:
		for _, m := range strings.Split(metrics, ",") {
			if err := checkLoopbackURL(strings.TrimSpace(m)); err != nil {
				return nil, fmt.Errorf("%w: -metrics: %w", errUsage, err)
			}
			o.metrics = append(o.metrics, strings.TrimSpace(m))
		}
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	return o, nil
}

// validate checks the ranges of the settings, naming the flag.
func (o *options) validate() error {
	switch {
	case o.timeout <= 0:
		return errors.New("-timeout must be positive")
	case o.dialConc < 1 || o.dialConc > 10000:
		return errors.New("-dial-concurrency must be 1 to 10000")
	case o.sources < 1 || o.sources > 254:
		return errors.New("-sources must be 1 to 254")
	}
	switch o.scenario {
	case "idle":
		if o.conns < 1 || o.conns > 1_000_000 {
			return errors.New("-conns must be 1 to 1000000")
		}
		if o.members < 1 {
			return errors.New("-members must be at least 1")
		}
		if o.settle < 0 {
			return errors.New("-settle must not be negative")
		}
	case "fanout", "capacity":
		if o.rooms < 1 || o.members < 2 || o.rooms*o.members > 1_000_000 {
			return errors.New("-rooms must be at least 1 and -members at least 2, with rooms*members at most 1000000")
		}
		if o.rate <= 0 || o.rate > 1_000_000 {
			return errors.New("-rate must be above 0 and at most 1000000 messages per second")
		}
		if o.duration <= 0 || o.warmup < 0 || o.drain <= 0 || o.settle < 0 {
			return errors.New("-duration and -drain must be positive, -warmup and -settle not negative")
		}
		if o.textBytes < minTextBytes || o.textBytes > 1<<20 {
			return fmt.Errorf("-text-bytes must be %d to 1048576", minTextBytes)
		}
		if o.scenario == "capacity" {
			if o.p99 <= 0 || o.maxRate < o.rate || o.precision <= 0 || o.maxSteps < 1 {
				return errors.New("-p99 and -precision must be positive, -max-rate at least -rate, -max-steps at least 1")
			}
		}
	case "soak":
		if o.rooms < 1 || o.rooms > 100_000 {
			return errors.New("-rooms must be 1 to 100000")
		}
		if o.rate <= 0 || o.rate > 10_000 {
			return errors.New("-rate must be above 0 and at most 10000 users per second")
		}
		if o.duration <= 0 || o.report <= 0 || o.drain <= 0 || o.warmup < 0 || o.warmup >= o.duration {
			return errors.New("-duration, -report and -drain must be positive, -warmup not negative and below -duration")
		}
		if o.rate*o.duration.Seconds() > 10_000_000 {
			return errors.New("-rate times -duration must be at most 10000000 users")
		}
		if o.redis != "" {
			if err := checkLoopbackAddr(o.redis); err != nil {
				return fmt.Errorf("-redis: %w", err)
			}
		}
	case "storm":
		if o.rate <= 0 || o.factor <= 1 || o.step <= 0 || o.connectP99 <= 0 || o.maxRate < o.rate || o.maxSteps < 1 || o.maxConns < 1 || o.cooldown < 0 {
			return errors.New("-rate, -step and -connect-p99 must be positive, -factor above 1, -max-rate at least -rate, -max-steps and -max-conns at least 1")
		}
	}
	return nil
}

// parseTargets splits and checks -target.
func parseTargets(s string) ([]string, error) {
	var out []string
	for _, t := range strings.Split(s, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if err := checkLoopbackURL(t); err != nil {
			return nil, err
		}
		out = append(out, strings.TrimSuffix(t, "/"))
	}
	if len(out) == 0 {
		return nil, errors.New("name at least one URL, such as http://127.0.0.1:3000")
	}
	return out, nil
}

// checkLoopbackURL refuses every URL whose host is not a loopback address:
// chatbench loads only servers on this machine.
func checkLoopbackURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "ws" {
		return fmt.Errorf("%q: the scheme must be http or ws", s)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%q: only loopback hosts (127.0.0.0/8, ::1, localhost) may be loaded", s)
	}
	if u.Port() == "" {
		return fmt.Errorf("%q: name the port, such as http://127.0.0.1:3000", s)
	}
	return nil
}

// parsePIDs splits -pid.
func parsePIDs(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a process id", p)
		}
		out = append(out, n)
	}
	return out, nil
}
