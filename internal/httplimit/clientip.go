package httplimit

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Proxies are the addresses whose X-Forwarded-For chatd believes: the
// shipped nginx, an Ingress controller, a load balancer. The zero value
// trusts no one, so every client is the address it connects from.
type Proxies struct {
	prefixes []netip.Prefix
}

// ParseProxies parses addresses ("10.0.0.7", "::1") and CIDRs
// ("10.0.0.0/8"). Its error names the entry at fault.
func ParseProxies(entries []string) (Proxies, error) {
	var p Proxies
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if strings.Contains(e, "/") {
			pfx, err := netip.ParsePrefix(e)
			if err != nil {
				return Proxies{}, fmt.Errorf("%q is not an address or a CIDR such as 10.0.0.0/8", e)
			}
			p.prefixes = append(p.prefixes, pfx.Masked())
			continue
		}
		a, err := netip.ParseAddr(e)
		if err != nil {
			return Proxies{}, fmt.Errorf("%q is not an address or a CIDR such as 10.0.0.0/8", e)
		}
		a = a.Unmap()
		p.prefixes = append(p.prefixes, netip.PrefixFrom(a, a.BitLen()))
	}
	return p, nil
}

// trusts reports whether a is one of the proxies.
func (p Proxies) trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, pfx := range p.prefixes {
		if pfx.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddr returns the address of the client behind r: the peer address,
// or, when the peer is a trusted proxy, the rightmost X-Forwarded-For entry
// that is not itself a trusted proxy (entries to its left were written by
// the client and prove nothing). It returns the peer's text when it cannot
// be parsed (a unix socket, a test).
func (p Proxies) ClientAddr(r *http.Request) string {
	return p.ClientAddrOf(r.RemoteAddr, r.Header)
}

// ClientAddrOf is [Proxies.ClientAddr] for a peer address ("host:port")
// and the request headers, as a socket.io handshake records them.
func (p Proxies) ClientAddrOf(remote string, header http.Header) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	if len(p.prefixes) == 0 || !p.trusts(peer) {
		return peer.String()
	}
	hops := header.Values("X-Forwarded-For")
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				// Garbage from the client: the last good hop is the client.
				return client.String()
			}
			client = a.Unmap()
			if !p.trusts(client) {
				return client.String()
			}
		}
	}
	return client.String()
}
