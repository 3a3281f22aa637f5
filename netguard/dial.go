package netguard

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// keepAlive is the TCP keep-alive period of Dialer: short enough that a
// vanished target is noticed well before the relay's WebSocket pings give up.
const keepAlive = 15 * time.Second

// Control checks the address a net.Dialer is about to connect to. Its
// signature matches net.Dialer.Control; the dialer calls it after name
// resolution, for every address it tries, with host an IP literal, so a
// host name cannot smuggle an internal address past it (DNS rebinding,
// happy-eyeballs fallbacks, multiple A records). It refuses non-IP networks
// and anything Check or Config.Self refuses; the error is a *BlockedError,
// which net.Dialer wraps in a *net.OpError. c is not used.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	if !strings.HasPrefix(network, "tcp") && !strings.HasPrefix(network, "udp") {
		return &BlockedError{Reason: fmt.Sprintf("not an IP network (%q)", network)}
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &BlockedError{Reason: fmt.Sprintf("not an IP address and port (%q)", address)}
	}
	return g.CheckAddrPort(ap)
}

// Dialer returns a net.Dialer that refuses what the guard refuses, with the
// given connect timeout (zero means no timeout beyond the context's) and TCP
// keep-alives. Use its DialContext as http.Transport.DialContext to guard
// the WebSocket handshake. Each call returns a new Dialer the caller may
// adjust (for example its Resolver) before first use.
func (g *Guard) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout:   timeout,
		KeepAlive: keepAlive,
		Control:   g.Control,
	}
}
