// Package httplimit holds chatd's HTTP-level protections, which sit in
// front of the socket.io server and the server API: the client address as
// seen through trusted proxies, a time limit on reading request bodies, and
// a throttle on failed authentication per client address.
package httplimit
