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
	// The requests' paths and queries, built in buffers reused by the
	// poll loop and the worker.
	pollPQ, sendPQ []byte
}

// release closes the session's connections; call it after the poll loop
// and the worker are done.
func (s *psession) release() {
	s.pollConn.release()
	s.sendConn.release()
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

// do runs one GET on conn and checks the status.
func (s *psession) do(ctx context.Context, conn *hconn, buf *bytes.Buffer, op string, pathQuery []byte, timeout time.Duration, want int) error {
	st, err := conn.getBytes(ctx, pathQuery, timeout, buf)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return decode(op, st, want, buf.Bytes(), nil)
}

// send sends text as message n.
func (s *psession) send(ctx context.Context, n int64, text []byte) error {
	b := append(s.sendPQ[:0], "/s/"...)
	b = append(b, s.socket...)
	b = append(b, "?t=t&n="...)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, "&d="...)
	b = appendQueryEscape(b, text)
	s.sendPQ = b
	return s.do(ctx, s.sendConn, &s.sendBuf, "send", b, s.p.timeout, http.StatusCreated)
}

// appendQueryEscape is url.QueryEscape appending to b.
func appendQueryEscape(b, s []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~':
			b = append(b, c)
		case c == ' ':
			b = append(b, '+')
		default:
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return b
}

// closeSession ends the session with 1000.
func (s *psession) closeSession(ctx context.Context) error {
	return s.do(ctx, s.sendConn, &s.sendBuf, "close", []byte("/c/"+s.socket+"?code=1000"), s.p.timeout, http.StatusOK)
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
	b := append(s.pollPQ[:0], "/j/"...)
	b = append(b, s.socket...)
	b = append(b, "?ttl="...)
	b = strconv.AppendInt(b, ttl.Milliseconds(), 10)
	b = append(b, "&a="...)
	b = strconv.AppendInt(b, ack, 10)
	s.pollPQ = b
	st, err := s.pollConn.getBytes(ctx, b, ttl+s.p.timeout, &s.pollBuf)
	if err != nil {
		return fmt.Errorf("poll: %w", err)
	}
	if err := decode("poll", st, http.StatusOK, s.pollBuf.Bytes(), nil); err != nil {
		return err
	}
	if decodePollFast(s.pollBuf.Bytes(), r) {
		return nil
	}
	// Unmarshal reuses the slice's elements without zeroing them, and a
	// heartbeat has no seq.
	clear(r.Messages[:cap(r.Messages)])
	r.Messages = r.Messages[:0]
	return decode("poll", st, http.StatusOK, s.pollBuf.Bytes(), r)
}

// decodePollFast decodes a poll answer in the relay's own layout
// ({"ok":true,"messages":[{"type":…,…},…]}, flat objects, no escapes in
// strings) without encoding/json's reflection, which was the tool's
// largest cost after its syscalls. It reports false for anything else,
// and the caller falls back to encoding/json.
func decodePollFast(body []byte, r *pollReply) bool {
	const head = `{"ok":true,"messages":[`
	if !bytes.HasPrefix(body, []byte(head)) {
		return false
	}
	p := body[len(head):]
	r.OK = true
	r.Messages = r.Messages[:0]
	if string(p) == "]}" {
		return true
	}
	for {
		var m pollMsg
		var ok bool
		if p, ok = decodeMsgFast(p, &m); !ok {
			return false
		}
		r.Messages = append(r.Messages, m)
		switch {
		case len(p) > 0 && p[0] == ',':
			p = p[1:]
		case string(p) == "]}":
			return true
		default:
			return false
		}
	}
}

// decodeMsgFast decodes one message object at the start of p.
func decodeMsgFast(p []byte, m *pollMsg) ([]byte, bool) {
	if len(p) == 0 || p[0] != '{' {
		return p, false
	}
	p = p[1:]
	for {
		key, rest, ok := jsonStr(p)
		if !ok || len(rest) == 0 || rest[0] != ':' {
			return p, false
		}
		p = rest[1:]
		switch string(key) {
		case "type", "data", "reason":
			var v []byte
			if v, p, ok = jsonStr(p); !ok {
				return p, false
			}
			switch string(key) {
			case "type":
				m.Type = msgType(v)
			case "data":
				m.Data = string(v)
			}
		case "seq", "code":
			var v int64
			if v, p, ok = jsonInt(p); !ok {
				return p, false
			}
			if string(key) == "seq" {
				m.Seq = v
			} else {
				m.Code = int(v)
			}
		default:
			return p, false
		}
		switch {
		case len(p) > 0 && p[0] == ',':
			p = p[1:]
		case len(p) > 0 && p[0] == '}':
			return p[1:], true
		default:
			return p, false
		}
	}
}

// msgType returns the message types as constants, without allocating.
func msgType(v []byte) string {
	switch string(v) {
	case "text":
		return "text"
	case "heartbeat":
		return "heartbeat"
	case "close":
		return "close"
	case "binary":
		return "binary"
	}
	return string(v)
}

// jsonStr reads a JSON string without escapes at the start of p.
func jsonStr(p []byte) (v, rest []byte, ok bool) {
	if len(p) == 0 || p[0] != '"' {
		return nil, p, false
	}
	for i := 1; i < len(p); i++ {
		switch p[i] {
		case '"':
			return p[1:i], p[i+1:], true
		case '\\':
			return nil, p, false // escapes: leave it to encoding/json
		}
	}
	return nil, p, false
}

// jsonInt reads a non-negative JSON integer at the start of p.
func jsonInt(p []byte) (v int64, rest []byte, ok bool) {
	i := 0
	for i < len(p) && i < 18 && p[i] >= '0' && p[i] <= '9' {
		v = v*10 + int64(p[i]-'0')
		i++
	}
	if i == 0 || (i < len(p) && p[i] >= '0' && p[i] <= '9') {
		return 0, p, false
	}
	return v, p[i:], true
}
