package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// protoClient speaks the polysocket protocol over HTTP/1.1, one
// connection per request in flight, like a browser holding a session.
type protoClient struct {
	hc      *http.Client
	routers []*url.URL // /create goes to each in turn
	next    atomic.Uint64
	token   string
	timeout time.Duration
	bufs    sync.Pool // *bytes.Buffer for response bodies
}

func newProtoClient(cfg Config) *protoClient {
	routers := make([]*url.URL, len(cfg.Routers))
	for i, r := range cfg.Routers {
		routers[i], _ = url.Parse(r) // validated
	}
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, sessionAddr(addr))
		},
		// Each session is its own host, so two idle connections per host
		// (poll and send) suffice; the total is unbounded.
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   max(4, 2*cfg.Concurrency),
		MaxConnsPerHost:       0,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: cfg.PollTTL + cfg.Timeout,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
	return &protoClient{
		hc:      &http.Client{Transport: tr, Timeout: cfg.PollTTL + cfg.Timeout},
		routers: routers,
		token:   cfg.Token,
		timeout: cfg.Timeout,
		bufs:    sync.Pool{New: func() any { return new(bytes.Buffer) }},
	}
}

// sessionAddr maps a session's address to one that dials without a
// resolver: sessions live at {uniq}.{relay fqdn}, and a relay on
// localhost or an IP address (a test's) is reached there directly.
func sessionAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return net.JoinHostPort("127.0.0.1", port)
	}
	if _, rest, ok := strings.Cut(host, "."); ok {
		if ip := net.ParseIP(rest); ip != nil {
			return net.JoinHostPort(rest, port)
		}
	}
	return addr
}

func (p *protoClient) close() { p.hc.CloseIdleConnections() }

// statusError is a request that got an unexpected HTTP status.
type statusError struct {
	op     string
	status int
	body   string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s: HTTP %d: %s", e.op, e.status, e.body)
}

// get sends a GET to router and decodes a JSON answer into v when the
// status is want.
func (p *protoClient) get(ctx context.Context, router *url.URL, op, pathQuery string, want int, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, router.Scheme+"://"+router.Host+pathQuery, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	buf := p.bufs.Get().(*bytes.Buffer)
	defer p.bufs.Put(buf)
	buf.Reset()
	if _, err := io.Copy(buf, io.LimitReader(resp.Body, 8<<20)); err != nil {
		return fmt.Errorf("%s: reading the answer: %w", op, err)
	}
	return decode(op, resp.StatusCode, want, buf.Bytes(), v)
}

// decode checks the status and decodes a JSON body into v (if not nil).
func decode(op string, status, want int, body []byte, v any) error {
	if status != want {
		if len(body) > 200 {
			body = body[:200]
		}
		return &statusError{op: op, status: status, body: string(bytes.TrimSpace(body))}
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: decoding the answer: %w", op, err)
	}
	return nil
}

type createReply struct {
	OK     bool   `json:"ok"`
	FQDN   string `json:"fqdn"`
	Socket string `json:"socket"`
	Error  string `json:"error"`
	Code   string `json:"code"`
}

// psession is the client's handle on one session: where it lives, and
// two connections, as a browser would hold them: one for polls (used by
// the poll loop only) and one for sends and the close (used by the
// session's worker only).
type psession struct {
	p        *protoClient
	socket   string
	pollConn *hconn
	sendConn *hconn
	pollBuf  bytes.Buffer
	sendBuf  bytes.Buffer
}

// release closes the session's connections; call it after the poll loop
// and the worker are done.
func (s *psession) release() {
	s.pollConn.close()
	s.sendConn.close()
}

// create opens a session to target, on the routers in turn.
func (p *protoClient) create(ctx context.Context, target string) (*psession, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	router := p.routers[(p.next.Add(1)-1)%uint64(len(p.routers))]
	q := url.Values{"from": {"polysocket-bench"}, "target": {target}, "token": {p.token}}
	var r createReply
	err := p.get(ctx, router, "create", "/create?"+q.Encode(), http.StatusOK, &r)
	if err != nil {
		return nil, err
	}
	if !r.OK {
		return nil, fmt.Errorf("create: %s: %s", r.Code, r.Error)
	}
	return &psession{
		p:        p,
		socket:   r.Socket,
		pollConn: newHconn(router.Scheme, r.FQDN),
		sendConn: newHconn(router.Scheme, r.FQDN),
	}, nil
}

// do runs one GET on conn and decodes the answer.
func (s *psession) do(ctx context.Context, conn *hconn, buf *bytes.Buffer, op, pathQuery string, timeout time.Duration, want int, v any) error {
	st, err := conn.get(ctx, pathQuery, timeout, buf)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return decode(op, st, want, buf.Bytes(), v)
}

// send sends text as message n.
func (s *psession) send(ctx context.Context, n int64, text []byte) error {
	var b strings.Builder
	b.Grow(len(s.socket) + len(text)*3/2 + 32)
	b.WriteString("/s/")
	b.WriteString(s.socket)
	b.WriteString("?t=t&n=")
	b.WriteString(strconv.FormatInt(n, 10))
	b.WriteString("&d=")
	b.WriteString(url.QueryEscape(string(text)))
	return s.do(ctx, s.sendConn, &s.sendBuf, "send", b.String(), s.p.timeout, http.StatusCreated, nil)
}

// closeSession ends the session with 1000.
func (s *psession) closeSession(ctx context.Context) error {
	return s.do(ctx, s.sendConn, &s.sendBuf, "close", "/c/"+s.socket+"?code=1000", s.p.timeout, http.StatusOK, nil)
}

type pollMsg struct {
	Type string `json:"type"`
	Data string `json:"data"`
	Seq  int64  `json:"seq"`
	Code int    `json:"code"`
}

type pollReply struct {
	OK       bool      `json:"ok"`
	Messages []pollMsg `json:"messages"`
}

// poll is one /j request acking ack, held at most ttl.
func (s *psession) poll(ctx context.Context, ttl time.Duration, ack int64, r *pollReply) error {
	// Unmarshal reuses the slice's elements without zeroing them, and a
	// heartbeat has no seq.
	clear(r.Messages[:cap(r.Messages)])
	r.Messages = r.Messages[:0]
	pq := "/j/" + s.socket + "?ttl=" + strconv.FormatInt(ttl.Milliseconds(), 10) + "&a=" + strconv.FormatInt(ack, 10)
	return s.do(ctx, s.pollConn, &s.pollBuf, "poll", pq, ttl+s.p.timeout, http.StatusOK, r)
}
