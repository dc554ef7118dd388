package sioadapter

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
)

// pendingRequest collects the answers to one request until every instance
// it waits for has answered or left.
type pendingRequest struct {
	mu       sync.Mutex // guards the following fields
	waiting  map[string]struct{}
	replies  []*wireMessage
	done     chan struct{}
	finished bool
}

func (p *pendingRequest) add(m *wireMessage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.replies = append(p.replies, m)
	delete(p.waiting, m.From)
	if len(p.waiting) == 0 {
		p.finished = true
		close(p.done)
	}
}

func (p *pendingRequest) forget(node string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	delete(p.waiting, node)
	if len(p.waiting) == 0 {
		p.finished = true
		close(p.done)
	}
}

// missing lists the instances that have not answered, sorted; p.mu must be
// held.
func (p *pendingRequest) missing() string {
	return strings.Join(slices.Sorted(maps.Keys(p.waiting)), ", ")
}

func (p *pendingRequest) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.finished {
		p.finished = true
		close(p.done)
	}
}

// request sends m on the bus to every instance and waits until each
// instance alive when it was sent has answered (or left), RequestTimeout
// passes, ctx ends or the builder closes. It returns the answers that
// arrived; when some are missing, an error wrapping ErrRequestTimeout names
// the instances that did not answer.
func (b *AdapterBuilder) request(ctx context.Context, m *wireMessage) ([]*wireMessage, error) {
	start := time.Now()
	replies, err := b.doRequest(ctx, m)
	if h := b.opts.Hooks.Request; h != nil {
		h(m.Kind.String(), time.Since(start), err)
	}
	return replies, err
}

func (b *AdapterBuilder) doRequest(ctx context.Context, m *wireMessage) ([]*wireMessage, error) {
	if b.closed.Load() {
		return nil, ErrAdapterClosed
	}
	nodes := b.nodes.alive()
	if len(nodes) == 0 {
		return nil, nil
	}
	p := &pendingRequest{waiting: make(map[string]struct{}, len(nodes)), done: make(chan struct{})}
	for _, n := range nodes {
		p.waiting[n] = struct{}{}
	}
	m.Req = b.reqs.newID()
	b.reqs.start(m.Req, p)
	defer b.reqs.end(m.Req)
	if err := b.publish(b.busChannel, m); err != nil {
		return nil, err
	}
	t := time.NewTimer(b.opts.RequestTimeout)
	defer t.Stop()
	var err error
	select {
	case <-p.done:
		if b.closed.Load() {
			err = ErrAdapterClosed
		}
	case <-t.C:
		p.mu.Lock()
		err = fmt.Errorf("%w: %s: %d of %d instances did not answer within %v: %s",
			ErrRequestTimeout, m.Kind, len(p.waiting), len(nodes), b.opts.RequestTimeout, p.missing())
		p.finished = true
		p.mu.Unlock()
	case <-ctx.Done():
		p.mu.Lock()
		err = fmt.Errorf("%w (%w): %s: %d of %d instances had not answered: %s",
			ErrRequestTimeout, context.Cause(ctx), m.Kind, len(p.waiting), len(nodes), p.missing())
		p.finished = true
		p.mu.Unlock()
	}
	p.mu.Lock()
	replies := p.replies
	p.mu.Unlock()
	return replies, err
}

// reply answers request req of instance to on that instance's channel.
func (b *AdapterBuilder) reply(to string, m *wireMessage) {
	_ = b.publish(b.nodeChannelOf(to), m)
}

func (b *AdapterBuilder) nodeChannelOf(node string) string {
	if b.shard != nil {
		return shardNodeChannel(b.opts.Prefix, node)
	}
	return b.opts.Prefix + ":node:" + node
}

// pendingAck tracks a broadcast with acknowledgements sent to the other
// instances: their socket counts and their sockets' answers are passed to
// the socket.io broadcast operator until its timeout.
type pendingAck struct {
	count func(uint64)
	ack   socket.Ack
	timer *time.Timer
}

// requests are this instance's requests waiting for the other instances'
// answers, and its broadcasts waiting for acknowledgements.
type requests struct {
	seq atomic.Uint64 // numbers the requests

	mu      sync.Mutex // guards the following fields
	pending map[string]*pendingRequest
	acks    map[string]*pendingAck
}

func newRequests() *requests {
	return &requests{pending: make(map[string]*pendingRequest), acks: make(map[string]*pendingAck)}
}

// newID returns a request id unique to this instance.
func (r *requests) newID() string {
	return strconv.FormatUint(r.seq.Add(1), 36)
}

// start registers a request waiting for answers.
func (r *requests) start(id string, p *pendingRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending[id] = p
}

// end forgets a request.
func (r *requests) end(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pending, id)
}

// get returns the request with id, nil when there is none (any more).
func (r *requests) get(id string) *pendingRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pending[id]
}

// forget stops every request from waiting for node, which left.
func (r *requests) forget(node string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pending {
		p.forget(node)
	}
}

// addAck registers a broadcast's acknowledgements for ttl.
func (r *requests) addAck(req string, p *pendingAck, ttl time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.acks[req] = p
	p.timer = time.AfterFunc(ttl, func() {
		r.mu.Lock()
		delete(r.acks, req)
		r.mu.Unlock()
	})
}

// ack returns the broadcast whose acknowledgements req carries, nil when
// there is none (any more).
func (r *requests) ack(req string) *pendingAck {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.acks[req]
}

// finishAll ends every request and broadcast waiting, when the builder
// closes.
func (r *requests) finishAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, p := range r.pending {
		p.finish()
		delete(r.pending, id)
	}
	for id, p := range r.acks {
		p.timer.Stop()
		delete(r.acks, id)
	}
}
