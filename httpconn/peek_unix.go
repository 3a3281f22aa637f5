//go:build unix

package httpconn

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// peerGone reports whether the client has closed or reset conn, without
// taking any byte from it and without waiting: a non-blocking MSG_PEEK
// on the socket (of a TLS connection, its TCP socket: a pending record,
// close_notify included, counts as alive).
func peerGone(conn net.Conn) bool {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	var one [1]byte
	_ = raw.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK) // the socket is non-blocking
		switch {
		case rerr == nil:
			gone = n == 0 // an orderly close
		case errors.Is(rerr, syscall.EAGAIN), errors.Is(rerr, syscall.EINTR):
		default:
			gone = true // reset
		}
		return true // never wait for data
	})
	return gone
}
