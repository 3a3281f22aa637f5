package process

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// echoBackend serves the built-in echo target alone, on a loopback port
// of its own. A target that names the relay itself (its listen
// addresses, its fqdn, localhost on its port) is dialed here instead
// (netguard.Guard.DialFunc), so ws://localhost:8080/echo works as
// before while the relay never dials its own /create or session paths.
type echoBackend struct {
	ln   net.Listener
	addr string // of ln
	srv  *http.Server
	done chan struct{} // closed when Serve returned
}

// startEchoBackend serves echo at /echo (and nothing else) on
// 127.0.0.1 until close; over TLS with tlsConf (the public listener's,
// so that wss://{fqdn}/echo finds the certificate it would have found
// there), plain without.
func startEchoBackend(echo http.Handler, tlsConf *tls.Config, log *zap.Logger) (*echoBackend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	if tlsConf != nil {
		tlsConf = tlsConf.Clone()
		tlsConf.NextProtos = nil // HTTP/1.1: the WebSocket handshake
		ln = tls.NewListener(ln, tlsConf)
	}
	mux := http.NewServeMux()
	mux.Handle("/echo", echo)
	e := &echoBackend{
		ln:   ln,
		addr: addr,
		done: make(chan struct{}),
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          zap.NewStdLog(log.Named("echo")),
		},
	}
	go func() {
		defer close(e.done)
		if err := e.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("serving the built-in echo", zap.Error(err))
		}
	}()
	return e, nil
}

// dial connects to the echo backend, within timeout and ctx.
func (e *echoBackend) dial(timeout time.Duration) func(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	return func(ctx context.Context) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", e.addr)
	}
}

// close stops the server and waits for Serve to return; the echo
// connections themselves are ended by the demo handler's Close.
func (e *echoBackend) close() {
	e.srv.Close()
	<-e.done
}
