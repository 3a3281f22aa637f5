package process

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"

	"github.com/polysocket/polysocket/demo"
	"github.com/polysocket/polysocket/membus"
	"github.com/polysocket/polysocket/metrics"
	"github.com/polysocket/polysocket/relay"
	"github.com/polysocket/polysocket/router"
	"github.com/polysocket/polysocket/token"
	"go.uber.org/zap"
)

// buildBoth builds `both`: a router and a relay on one listener, on an
// in-process bus (or Redis with Setup.Redis), with the demo page and
// the built-in echo.
func buildBoth(s Setup, ls listeners, rel *releaser) (parts, error) {
	fqdn := s.Relay.FQDN
	if fqdn == "" {
		fqdn = "localhost:" + portOf(ls.public)
	}
	// Production relays dial only public addresses unless told
	// otherwise; the development token reaches local servers (see
	// devToken). The relay never dials itself: a target naming it goes
	// to the built-in echo, or is refused.
	place := relayPlace{fqdn: fqdn, self: ls.selfAddrs()}
	b, err := openBothBus(s, ls.public, fqdn, &place)
	if err != nil {
		return parts{}, err
	}
	rel.add(b.close)
	var d *demo.Demo
	if s.Echo {
		d = demo.Handler(s.Log.Named("demo"))
		rel.add(func() { d.Close() })
		tlsConf, err := serverTLS(s.TLSCert, s.TLSKey)
		if err != nil {
			return parts{}, err
		}
		eb, err := startEchoBackend(d, tlsConf, s.Log)
		if err != nil {
			return parts{}, err
		}
		rel.add(eb.close)
		place.echo = eb.dial(s.Relay.Session.DialTimeout)
	}
	pt := parts{mux: http.NewServeMux(), m: metrics.New(), check: b.check}
	if pt.relay, err = newRelay(s, place, b.bus, pt.m); err != nil {
		return parts{}, err
	}
	if err := mountRouter(s, pt, b.bus, b.tokens); err != nil {
		return parts{}, err
	}
	mountRelay(pt.mux, pt.relay)
	if d != nil {
		pt.mux.Handle("/", d)
		s.Log.Info("demo page at http://" + fqdn + "/ with an echo WebSocket at ws://" + fqdn + "/echo")
	}
	s.Log.Info("polysocket both", zap.String("fqdn", fqdn), zap.String("sessions", "{uniq}."+fqdn))
	return pt, nil
}

// bothBus is the bus and token store of `both`.
type bothBus struct {
	bus interface {
		router.Bus
		relay.Bus
	}
	tokens router.TokenStore
	// check is the readiness check of the bus; nil for the in-process
	// one, which always answers.
	check func(context.Context) error
	close func()
}

// openBothBus opens Redis with Setup.Redis; without, an in-process bus
// with the static tokens, and the development token's loopback reach
// set in place.
func openBothBus(s Setup, ln net.Listener, fqdn string, place *relayPlace) (bothBus, error) {
	if s.Redis != "" {
		rb, err := openRedis(s)
		if err != nil {
			return bothBus{}, err
		}
		return bothBus{bus: rb, tokens: rb, check: redisCheck(rb), close: rb.Close}, nil
	}
	var dev token.Token
	if s.DevToken {
		dev, place.loopback = devToken(s, ln, fqdn)
	}
	if s.Tokens == nil {
		return bothBus{}, fmt.Errorf("process: Setup.Tokens is required for the in-process bus")
	}
	st, err := s.Tokens(dev)
	if err != nil {
		return bothBus{}, err
	}
	return bothBus{bus: membus.New(0), tokens: st, close: func() {}}, nil
}

// devToken is the development token of `both` for a public listener ln,
// and whether the relay may dial loopback for it. On a loopback listener
// (a laptop) it reaches any ws://localhost:* and ws://127.0.0.1:*; on
// any other address (a container, a server), where any page anywhere
// could otherwise have the relay dial every port of the machine's
// loopback, only the built-in echo target, unless --dev-any-loopback.
func devToken(s Setup, ln net.Listener, fqdn string) (token.Token, bool) {
	addr := ln.Addr().(*net.TCPAddr)
	switch {
	case addr.IP.IsLoopback():
		return token.Dev(), true
	case s.DevAnyLoopback:
		s.Log.Warn("--dev-any-loopback: the dev token lets any page have the relay dial any ws://localhost port of this machine, " +
			"although it listens on " + addr.String() + ", which is not loopback")
		return token.Dev(), true
	}
	port := portOf(ln)
	s.Log.Info("listening on " + addr.String() + ", which is not loopback: the dev token reaches only the built-in echo target " +
		"(ws://localhost:" + port + "/echo); --dev-any-loopback lets it reach any ws://localhost port")
	return token.DevEcho("localhost:"+port, "127.0.0.1:"+port, fqdn), false
}

// listeners are a process's sockets: the public one, and the admin one
// (nil with the admin listener off).
type listeners struct {
	public, admin net.Listener
}

// openListeners opens the public and the admin listener.
func openListeners(public, admin string) (listeners, error) {
	var ls listeners
	var err error
	if ls.public, err = net.Listen("tcp", public); err != nil {
		return ls, err
	}
	if ls.admin, err = listenAdmin(admin); err != nil {
		ls.public.Close()
		return listeners{}, err
	}
	return ls, nil
}

// listenAdmin opens the admin listener; none for "" or "off".
func listenAdmin(addr string) (net.Listener, error) {
	if addr == "" || addr == "off" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		// The usual cause: another polysocket on this machine has the
		// default 127.0.0.1:9090.
		return nil, fmt.Errorf("--admin-listen %s: %w (give each process on a machine its own --admin-listen, or off)", addr, err)
	}
	return ln, nil
}

// close closes the listeners (those Run has not taken over).
func (ls listeners) close() {
	ls.public.Close()
	if ls.admin != nil {
		ls.admin.Close()
	}
}

// selfAddrs are the addresses the process serves on, which its relay
// must never dial.
func (ls listeners) selfAddrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, ln := range []net.Listener{ls.public, ls.admin} {
		if ln == nil {
			continue
		}
		if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil {
			out = append(out, ap)
		}
	}
	return out
}
