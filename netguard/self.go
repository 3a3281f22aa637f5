package netguard

import (
	"net"
	"net/netip"
)

// isSelf reports whether a (unmapped, no zone) with port is one of the
// relay's own listen addresses.
func (g *Guard) isSelf(a netip.Addr, port uint16) bool {
	wildcard := false
	for _, s := range g.self {
		if s.Port() != port {
			continue
		}
		if s.Addr() == a {
			return true
		}
		wildcard = wildcard || s.Addr().IsUnspecified()
	}
	if !wildcard {
		return false
	}
	// A wildcard listener answers on every local address. The interface
	// list is read at dial time because addresses come and go; it is only
	// read when the port matches, so ordinary dials do not pay for it.
	if a.IsLoopback() {
		return true
	}
	local, err := localAddrs()
	if err != nil {
		// Cannot tell: refuse rather than risk dialing ourselves.
		return true
	}
	for _, l := range local {
		if l == a {
			return true
		}
	}
	return false
}

// localAddrs returns the machine's interface addresses, unmapped and
// without zones.
func localAddrs() ([]netip.Addr, error) {
	ifAddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(ifAddrs))
	for _, ia := range ifAddrs {
		var ip net.IP
		switch v := ia.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		default:
			continue
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	return out, nil
}
