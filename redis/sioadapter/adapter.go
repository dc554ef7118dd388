package sioadapter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/chatd/chatd/protocol"
)

// Defaults of AdapterOptions.
const (
	// DefaultAdapterPrefix starts every Redis key and channel of the adapter.
	DefaultAdapterPrefix = "chatd"
	// DefaultHeartbeatInterval is how often an instance announces itself.
	DefaultHeartbeatInterval = 5 * time.Second
	// DefaultHeartbeatTimeout is how long an instance that was not heard
	// from still counts as alive.
	DefaultHeartbeatTimeout = 15 * time.Second
	// DefaultRequestTimeout bounds how long a cluster-wide request
	// (fetchSockets, serverSideEmit with ack) waits for answers.
	DefaultRequestTimeout = 5 * time.Second
	// DefaultPublishTimeout bounds one Redis write on the broadcast path.
	DefaultPublishTimeout = 500 * time.Millisecond
	// DefaultPublishQueueSize is how many outgoing messages may wait for
	// Redis before new ones are dropped.
	DefaultPublishQueueSize = 4096
)

// ErrAdapterClosed is returned by cluster-wide operations after Close.
var ErrAdapterClosed = errors.New("redis: the adapter is closed")

// ErrRequestTimeout is returned (wrapped, with the number of answers) when
// not every live instance answered a request within RequestTimeout. The
// answers that did arrive are returned with it.
var ErrRequestTimeout = errors.New("redis: not every instance answered in time")

// AdapterOptions configures the Redis socket.io adapter. Zero values take the
// defaults above, and package protocol's for recovery.
type AdapterOptions struct {
	// Prefix starts every Redis key and channel, so deployments can share a
	// Redis (the `redis.prefix` setting). Default "chatd".
	Prefix string
	// InstanceID names this instance to the others (the `instance.id`
	// setting). It is required and must be unique in the deployment.
	InstanceID string
	// HeartbeatInterval is how often this instance announces itself.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout is how long another instance that was not heard from
	// still counts as alive; it must be longer than HeartbeatInterval.
	// Default: DefaultHeartbeatTimeout or three intervals, the longer.
	HeartbeatTimeout time.Duration
	// RequestTimeout bounds how long fetchSockets and serverSideEmit with an
	// acknowledgement wait for the other instances.
	RequestTimeout time.Duration
	// PublishTimeout bounds each Redis write on the broadcast path (PUBLISH
	// batches, XADD of the recovery stream, session writes), so that a Redis
	// in trouble costs a broadcast at most this long.
	PublishTimeout time.Duration
	// PublishQueueSize is how many messages may wait to be published; past it
	// new messages are dropped (counted in AdapterStats.Dropped).
	PublishQueueSize int
	// Logger receives the adapter's logs; default: discarded.
	Logger *slog.Logger
	// RecoveryStreamLength caps the recovery stream (XADD MAXLEN ~), in
	// packets. Default protocol.DefaultRecoveryBufferLength.
	RecoveryStreamLength int64
	// RecoveryMaxPackets is the most packets a session restore may replay; a
	// client that missed more gets a fresh session. Default
	// protocol.DefaultRecoveryMaxPackets.
	RecoveryMaxPackets int
	// RecoveryNamespaces are the namespaces that connection state recovery
	// covers: their broadcasts are recorded in the recovery stream and their
	// dropped sessions kept. Empty means every namespace. chatd names "/"
	// only, so that the Admin UI's namespace (/admin) takes no room in the
	// stream that chat clients resume from.
	RecoveryNamespaces []string
	// Hooks are called on adapter events, for metrics. Any of them may be nil.
	Hooks AdapterHooks

	// legacyWire makes the instance behave, on the wire, like one built
	// before wireMessage.Offset (tests of a rolling upgrade).
	legacyWire bool
}

// AdapterHooks are optional callbacks for metrics. They are called
// synchronously on the adapter's hot paths and must return quickly. kind is
// a message kind such as "broadcast", "heartbeat" or "fetch_sockets".
type AdapterHooks struct {
	// Published is called for every message written to Redis.
	Published func(kind string)
	// Received is called for every message received from another instance.
	Received func(kind string)
	// PublishFailed is called for every message that could not be written:
	// reason is "queue_full", "closed", "encode" or "redis".
	PublishFailed func(kind string, reason string)
	// Request is called when a cluster-wide request ends, with its duration
	// and its error (nil when every live instance answered).
	Request func(kind string, d time.Duration, err error)
}

// AdapterStats are running totals since the builder started.
type AdapterStats struct {
	Published     uint64 // messages written to Redis
	Received      uint64 // messages received from other instances
	PublishErrors uint64 // messages not written (Redis errors and drops)
	Dropped       uint64 // messages dropped without trying (queue full, closed, encoding)
	Recorded      uint64 // packets added to the recovery stream
	RecordErrors  uint64 // packets that could not be added to the recovery stream

	// SubscriptionConns is how many subscription connections are open now:
	// one, or on Redis Cluster one per master serving a wanted channel.
	SubscriptionConns int
	// Unconfirmed is how many wanted channels have no subscription confirmed
	// by Redis now (on Redis Cluster: being placed, or waiting for their
	// master).
	Unconfirmed int
	// Replaced counts, on Redis Cluster, the channels subscribed again after
	// losing their subscription (their slot moved, their master failed).
	Replaced uint64
}

// AdapterBuilder creates one RedisAdapter per socket.io namespace and owns
// what they share: the Redis subscription, the heartbeats, the publishing
// queue and the view of the other instances. It implements
// socket.AdapterConstructor: pass it to ServerOptions.SetAdapter.
//
// Its state is in parts that each guard their own: nodes (the other
// instances and the heartbeats), subs (the subscription connection, its
// channels and barriers), reqs (requests waiting for answers), pub (the
// publishing queue) and rec (where recovery data lives). The builder ties
// them together and runs their loops.
type AdapterBuilder struct {
	client goredis.UniversalClient
	opts   AdapterOptions
	log    *slog.Logger
	id     string
	nonce  string

	busChannel  string // every instance: broadcasts without a single room, requests, heartbeats
	nodeChannel string // this instance: answers to its requests

	nodes *nodes
	subs  *subscriptions // classic Pub/Sub: one server, Sentinel; nil on Redis Cluster
	shard *shardSubs     // sharded Pub/Sub on Redis Cluster; nil elsewhere
	reqs  *requests
	pub   *publisher
	rec   recovery

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce   sync.Once
	closed      atomic.Bool
	skipGoodbye atomic.Bool   // tests: vanish without telling the others
	redisOK     atomic.Bool   // the last Redis command succeeded
	seq         atomic.Uint64 // the last wireMessage.Seq sent (Redis Cluster)

	work    chan func() // see workLoop
	limiter adapterLogLimiter
	stats   struct {
		published, received, publishErrors, dropped, recorded, recordErrors, replaced atomic.Uint64
	}

	mu       sync.Mutex // guards the following fields
	adapters map[string]*RedisAdapter
}

var _ socket.AdapterConstructor = (*AdapterBuilder)(nil)

type adapterRoomRef struct {
	adapter *RedisAdapter
	room    socket.Room
}

// adapterOutgoing is one message for the publish loop: a PUBLISH of
// payload to channel, or, with record set, a run of recordPublishScript.
type adapterOutgoing struct {
	channel string
	kind    wireKind
	payload []byte
	record  *recordJob
}

// recordJob is a broadcast to record and publish in one script, and where
// its outcome goes: recordPublishScript on the recovery stream, or a
// store's script that ends with StoredBroadcastLua (StoredBroadcast.Run).
type recordJob struct {
	script *goredis.Script // nil: recordPublishScript
	eval   bool            // with script: EVAL, not EVALSHA
	keys   []string        // with script: its KEYS
	args   []any           // the script's ARGV
	state  atomic.Int32    // with script: jobQueued, jobSent or jobAbandoned
	done   chan recordResult
}

type recordResult struct {
	id        string // the recovery stream id
	recordErr string // the stream refused the entry; published with unrecordedOffset
	vals      []any  // with a store's script: its answer
	err       error  // the script did not run, or its outcome is unknown
}

// NewAdapterBuilder checks the options, subscribes to the adapter's channels
// and starts the heartbeats. Redis being unreachable is not an error: the
// builder waits at most RequestTimeout for a first answer, then keeps trying
// in the background, and Ready reports false until it succeeds.
func NewAdapterBuilder(client goredis.UniversalClient, opts AdapterOptions) (*AdapterBuilder, error) {
	if client == nil {
		return nil, errors.New("redis: adapter: a Redis client is required")
	}
	opts, err := adapterDefaults(opts)
	if err != nil {
		return nil, err
	}
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	cc, onCluster := client.(*goredis.ClusterClient)
	b := &AdapterBuilder{
		client:      client,
		opts:        opts,
		log:         opts.Logger.With("component", "adapter"),
		id:          opts.InstanceID,
		nonce:       hex.EncodeToString(nonce[:]),
		busChannel:  opts.Prefix + ":bus",
		nodeChannel: opts.Prefix + ":node:" + opts.InstanceID,
		nodes:       newNodes(opts.HeartbeatTimeout),
		reqs:        newRequests(),
		rec: recovery{
			streamKey:   opts.Prefix + ":recovery",
			sessionKeys: opts.Prefix + ":session:",
			oneServer:   !onCluster,
		},
		work:     make(chan func(), 1024),
		limiter:  adapterLogLimiter{every: 10 * time.Second},
		adapters: make(map[string]*RedisAdapter),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	if onCluster {
		b.busChannel = busPartition(opts.Prefix, opts.InstanceID)
		b.nodeChannel = shardNodeChannel(opts.Prefix, opts.InstanceID)
		always := make([]string, 0, busPartitions+1)
		for i := range busPartitions {
			always = append(always, busPartitionChannel(opts.Prefix, i))
		}
		always = append(always, b.nodeChannel)
		b.shard = newShardSubs(b.ctx, cc, opts.Prefix+":room:", always...)
		b.shard.start = func(c *shardConn) {
			b.wg.Add(2)
			go b.shardReceive(c)
			go b.shardWrite(c)
		}
		b.shard.replaced = &b.stats.replaced
		b.seq.Store(uint64(time.Now().UnixNano())) //nolint:gosec // the clock is past 1970
	} else {
		b.subs = newSubscriptions(b.ctx, client, opts.Prefix+":room:", b.busChannel, b.nodeChannel)
	}
	b.pub = newPublisher(client, opts.PublishQueueSize)

	ctx, cancel := context.WithTimeout(b.ctx, opts.RequestTimeout)
	defer cancel()
	b.redisOK.Store(client.Ping(ctx).Err() == nil)
	if b.shard != nil {
		if err := b.shard.check(opts.RequestTimeout); err != nil {
			// The check loop keeps placing them.
			b.log.Warn("adapter: Redis Cluster subscriptions failed, will retry", "err", err)
		}
	} else if err := b.subs.start(ctx); err != nil {
		// go-redis remembers the channels and subscribes when it reconnects.
		b.log.Warn("adapter: Redis subscription failed, will retry", "err", err)
	}

	b.wg.Add(5)
	if b.shard != nil {
		go b.shardCheckLoop()
	} else {
		go b.receiveLoop()
	}
	go b.subscriptionLoop()
	go b.heartbeatLoop()
	go b.publishLoop()
	go b.workLoop()
	return b, nil
}

func adapterDefaults(o AdapterOptions) (AdapterOptions, error) {
	if o.Prefix == "" {
		o.Prefix = DefaultAdapterPrefix
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.HeartbeatTimeout == 0 {
		o.HeartbeatTimeout = max(DefaultHeartbeatTimeout, 3*o.HeartbeatInterval)
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.PublishTimeout == 0 {
		o.PublishTimeout = DefaultPublishTimeout
	}
	if o.PublishQueueSize == 0 {
		o.PublishQueueSize = DefaultPublishQueueSize
	}
	if o.RecoveryStreamLength == 0 {
		o.RecoveryStreamLength = protocol.DefaultRecoveryBufferLength
	}
	if o.RecoveryMaxPackets == 0 {
		o.RecoveryMaxPackets = protocol.DefaultRecoveryMaxPackets
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.InstanceID == "":
		return o, errors.New("redis: adapter: InstanceID is required (the instance.id setting, CHATD_INSTANCE_ID)")
	case o.HeartbeatInterval < 0:
		return o, fmt.Errorf("redis: adapter: HeartbeatInterval %v must be positive", o.HeartbeatInterval)
	case o.HeartbeatTimeout <= o.HeartbeatInterval:
		return o, fmt.Errorf("redis: adapter: HeartbeatTimeout %v must be longer than HeartbeatInterval %v", o.HeartbeatTimeout, o.HeartbeatInterval)
	case o.RequestTimeout < 0:
		return o, fmt.Errorf("redis: adapter: RequestTimeout %v must be positive", o.RequestTimeout)
	case o.PublishTimeout < 0:
		return o, fmt.Errorf("redis: adapter: PublishTimeout %v must be positive", o.PublishTimeout)
	case o.PublishQueueSize < 0:
		return o, fmt.Errorf("redis: adapter: PublishQueueSize %d must be positive", o.PublishQueueSize)
	case o.RecoveryStreamLength < 0:
		return o, fmt.Errorf("redis: adapter: RecoveryStreamLength %d must be positive", o.RecoveryStreamLength)
	case o.RecoveryMaxPackets < 0:
		return o, fmt.Errorf("redis: adapter: RecoveryMaxPackets %d must be positive", o.RecoveryMaxPackets)
	}
	return o, nil
}

// InstanceID returns the name this instance uses towards the others.
func (b *AdapterBuilder) InstanceID() string { return b.id }

// New creates the adapter of one namespace. The socket.io server calls it;
// it is not meant to be called directly.
func (b *AdapterBuilder) New(nsp socket.Namespace) socket.Adapter {
	a := &RedisAdapter{Adapter: socket.MakeAdapter(), b: b}
	// Route the library's calls through the embedding type's overrides.
	a.Prototype(a)
	a.Construct(nsp)
	a.name = nsp.Name()
	_ = a.On("create-room", func(args ...any) { a.roomChanged(args) })
	_ = a.On("delete-room", func(args ...any) { a.roomChanged(args) })

	b.mu.Lock()
	if old, ok := b.adapters[a.name]; ok && old != a {
		b.log.Warn("adapter: namespace adapter replaced", "nsp", a.name)
	}
	b.adapters[a.name] = a
	b.mu.Unlock()
	return a
}

func (b *AdapterBuilder) adapter(nsp string) *RedisAdapter {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.adapters[nsp]
}

func (b *AdapterBuilder) removeAdapter(a *RedisAdapter) {
	b.mu.Lock()
	if b.adapters[a.name] == a {
		delete(b.adapters, a.name)
	}
	b.mu.Unlock()
}

// Ready reports whether the adapter can reach the other instances: its Redis
// subscription is confirmed and its last Redis command succeeded. /readyz
// should report it.
func (b *AdapterBuilder) Ready() bool {
	return !b.closed.Load() && b.subscribed() && b.redisOK.Load()
}

// subscribed reports whether the subscriptions this instance always needs
// are confirmed: on Redis Cluster, every bus partition and this instance's
// channel, each on its master's connection, and no wanted channel waits
// for a master.
func (b *AdapterBuilder) subscribed() bool {
	if b.shard != nil {
		return b.shard.ready()
	}
	return b.subs.subscribed.Load()
}

// Nodes returns the number of instances heard from within HeartbeatTimeout,
// this one included.
func (b *AdapterBuilder) Nodes() int {
	return len(b.nodes.alive()) + 1
}

// Stats returns the adapter's running totals.
func (b *AdapterBuilder) Stats() AdapterStats {
	conns, unconfirmed := 1, 0
	if b.shard != nil {
		conns, unconfirmed = b.shard.gauges()
	} else if !b.subs.subscribed.Load() {
		unconfirmed = len(b.subs.always)
	}
	return AdapterStats{
		SubscriptionConns: conns,
		Unconfirmed:       unconfirmed,
		Replaced:          b.stats.replaced.Load(),
		Published:         b.stats.published.Load(),
		Received:          b.stats.received.Load(),
		PublishErrors:     b.stats.publishErrors.Load(),
		Dropped:           b.stats.dropped.Load(),
		Recorded:          b.stats.recorded.Load(),
		RecordErrors:      b.stats.recordErrors.Load(),
	}
}

// Close tells the other instances this one is leaving, unsubscribes and
// stops the builder's goroutines. Adapters keep delivering to local sockets
// afterwards. Close is idempotent and always returns nil.
func (b *AdapterBuilder) Close() error {
	b.closeOnce.Do(func() {
		if !b.skipGoodbye.Load() {
			if payload, err := encodeWire(&wireMessage{Kind: kindGoodbye, From: b.id}); err == nil {
				ctx, cancel := context.WithTimeout(b.ctx, b.opts.PublishTimeout)
				err := b.publishCmd(ctx, b.client, b.busChannel, payload).Err()
				if err != nil {
					b.log.Debug("adapter: goodbye not sent", "err", err)
				}
				cancel()
			}
		}
		b.closed.Store(true)
		b.cancel()
		if b.shard != nil {
			b.shard.close()
		} else {
			b.subs.close()
		}
		b.wg.Wait()
		b.reqs.finishAll()
	})
	return nil
}
