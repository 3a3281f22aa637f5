package ops

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/polysocket/polysocket/internal/proctest"
	"github.com/polysocket/polysocket/internal/testenv"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf issues a server certificate for dnsNames and 127.0.0.1, returning
// its certificate and key as PEM.
func (ca *testCA) leaf(t *testing.T, dnsNames ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: dnsNames[0]},
		DNSNames:     dnsNames,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// localhostClient returns a client that trusts ca and reaches every
// *.localhost name at 127.0.0.1, as a browser does, so the relay's
// session subdomains are checked against the wildcard certificate.
func localhostClient(t *testing.T, ca *testCA) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.pool()},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err == nil && (host == "localhost" || strings.HasSuffix(host, ".localhost")) {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// TestTLS serves `both` over HTTPS with a wildcard certificate for
// localhost and *.localhost made by a test CA, and does a create and an
// echo over https, the session's subdomain verified against the
// wildcard.
func TestTLS(t *testing.T) {
	ca := newCA(t, "polysocket test CA")
	cert, key := ca.leaf(t, "localhost", "*.localhost")
	target := testenv.NewTarget(t, testenv.TargetOptions{})
	addr := proctest.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	p := startProc(t, proctest.Options{Addr: addr, TLS: &tls.Config{RootCAs: ca.pool(), ServerName: "localhost"}},
		"both", "--echo=false", "--create-rate", "0", "--fqdn", "localhost:"+port,
		"--tls-cert", writeFile(t, "cert.pem", cert), "--tls-key", writeFile(t, "key.pem", key))

	hc := localhostClient(t, ca)
	cl := &testenv.Client{Base: "https://localhost:" + port, HTTP: hc}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, st, err := cl.Create(ctx, target.URL, nil)
	if err != nil || !r.OK {
		t.Fatalf("create over https: status %d, %+v, %v", st, r, err)
	}
	if !strings.HasSuffix(r.FQDN, ".localhost:"+port) {
		t.Fatalf("fqdn %q", r.FQDN)
	}
	s := &testenv.Session{C: &testenv.Client{Base: cl.Base, Relay: "https://" + r.FQDN, HTTP: hc}, Socket: r.Socket}
	sent(t)(s.SendText(ctx, "over tls"))
	if got := s.Collect(t, 1, 10*time.Second); len(got) != 1 || got[0].Data != "over tls" {
		t.Fatalf("echo over https: %+v", got)
	}
	// Held polls over HTTP/1.1 and TLS are parked, answered on the
	// *tls.Conn and the connection handed back: the second poll reuses it.
	for i := range 2 {
		reused := false
		tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { reused = ci.Reused }})
		pr, st, err := s.Poll(tctx, 300*time.Millisecond)
		if err != nil || st != http.StatusOK || len(pr.Messages) != 1 || pr.Messages[0].Type != "heartbeat" {
			t.Fatalf("held poll %d over https: status %d, %+v, %v", i, st, pr, err)
		}
		if i == 1 && !reused {
			t.Errorf("the poll after a parked one did not reuse its connection")
		}
	}
	if _, err := s.Close(ctx, 1000, ""); err != nil {
		t.Fatal(err)
	}

	// Plain HTTP to the TLS port is refused (Go answers 400).
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + p.Addr() + "/healthz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS port: status %d", resp.StatusCode)
		}
	}
}

// tlsTarget is a wss:// echo server with a certificate from ca.
func tlsTarget(t *testing.T, ca *testCA) string {
	t.Helper()
	cert, key := ca.leaf(t, "localhost")
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []*websocket.Conn
		wg    sync.WaitGroup
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		testenv.Echo(r.Context(), c)
		c.CloseNow()
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	t.Cleanup(func() {
		mu.Lock()
		for _, c := range conns {
			c.CloseNow()
		}
		mu.Unlock()
		srv.Close()
		wg.Wait()
	})
	return "wss://" + strings.TrimPrefix(srv.URL, "https://")
}

// TestWSSTargetCA dials a wss:// target whose certificate comes from a
// private CA: refused with the system roots alone, accepted with that CA
// given by --target-ca.
func TestWSSTargetCA(t *testing.T) {
	ca := newCA(t, "target CA")
	target := tlsTarget(t, ca)
	args := []string{"both", "--echo=false", "--create-rate", "0", "--drain-timeout", "1s",
		"--token", "t", "--token-target", "wss://127.0.0.1:*", "--allow-cidr", "127.0.0.0/8"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	plain := startProc(t, proctest.Options{}, args...)
	cl := &testenv.Client{Base: plain.URL(), HTTP: plain.Client(), Token: "t"}
	if r, _, err := cl.Create(ctx, target, nil); err != nil || r.Code != "dial" || !strings.Contains(r.Error, "certificate") {
		t.Fatalf("without --target-ca: %+v, %v; want a dial refusal for the certificate", r, err)
	}

	withCA := startProc(t, proctest.Options{}, append(args, "--target-ca", writeFile(t, "ca.pem", ca.pem))...)
	cl = &testenv.Client{Base: withCA.URL(), HTTP: withCA.Client(), Token: "t"}
	s := cl.Open(t, target, nil)
	sent(t)(s.SendText(ctx, "over wss"))
	if got := s.Collect(t, 1, 10*time.Second); len(got) != 1 || got[0].Data != "over wss" {
		t.Fatalf("echo over wss: %+v", got)
	}
	if _, err := s.Close(ctx, 1000, ""); err != nil {
		t.Fatal(err)
	}
}

// TestTLSBuiltInEcho checks that the built-in echo, which a relay
// reaches apart from its own listener (it never dials itself), still
// answers wss:// with the listener's certificate when `both` serves TLS.
func TestTLSBuiltInEcho(t *testing.T) {
	ca := newCA(t, "polysocket test CA")
	cert, key := ca.leaf(t, "localhost", "*.localhost")
	addr := proctest.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	p := startProc(t, proctest.Options{Addr: addr, TLS: &tls.Config{RootCAs: ca.pool(), ServerName: "localhost"}},
		"both", "--create-rate", "0", "--drain-timeout", "100ms", "--close-grace", "100ms",
		"--token", "t", "--token-target", "wss://localhost:*", "--token-limit", "10", "--allow-cidr", "127.0.0.0/8",
		"--tls-cert", writeFile(t, "cert.pem", cert), "--tls-key", writeFile(t, "key.pem", key),
		"--target-ca", writeFile(t, "ca.pem", ca.pem))
	cl := &testenv.Client{Base: p.URL(), HTTP: p.Client(), Token: "t"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if r, st, err := cl.Create(ctx, "wss://localhost:"+port+"/echo", nil); err != nil || !r.OK {
		t.Fatalf("create to the built-in echo over wss: status %d, %+v, %v", st, r, err)
	}
	if r, _, err := cl.Create(ctx, "wss://localhost:"+port+"/create", nil); err != nil || r.OK {
		t.Fatalf("create to the relay's own /create over wss: %+v, %v; want a refusal", r, err)
	}
}
