//go:build !unix

package httpconn

import "net"

// peerGone cannot peek here: a client that went away is not seen.
func peerGone(net.Conn) bool { return false }
