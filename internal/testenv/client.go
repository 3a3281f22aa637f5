package testenv

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Client speaks the polysocket protocol over HTTP, as a browser's
// polysocket.js would, against a Stack (or any router and relay).
type Client struct {
	// Base is the router's base URL, e.g. http://127.0.0.1:1234.
	Base string
	// Relay is the base URL of the relay; "" means Base.
	Relay string
	// HTTP is the client used; nil means a client with a 90 s timeout.
	HTTP *http.Client
	// Token is sent to /create; default "dev".
	Token string
}

// CreateReply is /create's answer.
type CreateReply struct {
	OK       bool   `json:"ok"`
	FQDN     string `json:"fqdn"`
	Socket   string `json:"socket"`
	Protocol string `json:"protocol"`
	Error    string `json:"error"`
	Code     string `json:"code"`
}

// Msg is one message of a poll answer.
type Msg struct {
	Type   string `json:"type"`
	Data   string `json:"data"`
	Seq    int64  `json:"seq"`
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

// Bytes decodes a binary message's data.
func (m Msg) Bytes() ([]byte, error) { return base64.StdEncoding.DecodeString(m.Data) }

// PollReply is /j's answer.
type PollReply struct {
	OK       bool   `json:"ok"`
	Messages []Msg  `json:"messages"`
	Error    string `json:"error"`
	Code     string `json:"code"`
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 90 * time.Second}
}

func (c *Client) relay() string {
	if c.Relay != "" {
		return c.Relay
	}
	return c.Base
}

// Do sends a request and decodes a JSON answer into v (if not nil),
// returning the status.
func (c *Client) Do(ctx context.Context, method, u string, body url.Values, v any) (int, error) {
	return c.DoHost(ctx, method, u, "", body, v)
}

// DoHost is Do with host as the Host header ("": the URL's). A relay
// takes a session's requests only on the session's own host, the fqdn
// /create answered, which tests on 127.0.0.1 cannot resolve.
func (c *Client) DoHost(ctx context.Context, method, u, host string, body url.Values, v any) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(body.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if v != nil && len(b) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, v); err != nil {
			return resp.StatusCode, fmt.Errorf("decoding %q: %w", b, err)
		}
	}
	return resp.StatusCode, nil
}

// Create opens a session to target; extra adds parameters.
func (c *Client) Create(ctx context.Context, target string, extra url.Values) (CreateReply, int, error) {
	q := url.Values{"from": {"testenv"}, "target": {target}}
	tok := c.Token
	if tok == "" {
		tok = "dev"
	}
	q.Set("token", tok)
	for k, v := range extra {
		q[k] = v
	}
	var r CreateReply
	st, err := c.Do(ctx, http.MethodGet, c.Base+"/create?"+q.Encode(), nil, &r)
	return r, st, err
}

// Session is a client's view of one session.
type Session struct {
	C *Client
	// Host is the session's host ({uniq}.{relay fqdn}), sent as the
	// Host header of its requests; "" sends the relay URL's.
	Host   string
	Socket string
	Proto  string
	Ack    int64
	N      int64
}

// Open creates a session or fails the test.
func (c *Client) Open(t testing.TB, target string, extra url.Values) *Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, st, err := c.Create(ctx, target, extra)
	if err != nil || !r.OK {
		t.Fatalf("create: status %d, %+v, %v", st, r, err)
	}
	return &Session{C: c, Host: r.FQDN, Socket: r.Socket, Proto: r.Protocol}
}

// SendRaw sends one /s request with the given parameters (GET).
func (s *Session) SendRaw(ctx context.Context, q url.Values) (int, error) {
	return s.C.DoHost(ctx, http.MethodGet, s.C.relay()+"/s/"+s.Socket+"?"+q.Encode(), s.Host, nil, nil)
}

// SendText sends a whole text message with the next n.
func (s *Session) SendText(ctx context.Context, text string) (int, error) {
	s.N++
	return s.SendRaw(ctx, url.Values{"t": {"t"}, "d": {text}, "n": {strconv.FormatInt(s.N, 10)}})
}

// SendBinary sends a whole binary message with the next n, by POST.
func (s *Session) SendBinary(ctx context.Context, b []byte) (int, error) {
	s.N++
	body := url.Values{"t": {"b"}, "d": {base64.StdEncoding.EncodeToString(b)}, "n": {strconv.FormatInt(s.N, 10)}}
	return s.C.DoHost(ctx, http.MethodPost, s.C.relay()+"/s/"+s.Socket, s.Host, body, nil)
}

// Poll polls once with the session's ack and the given ttl, and advances
// the ack past what it got.
func (s *Session) Poll(ctx context.Context, ttl time.Duration) (PollReply, int, error) {
	q := url.Values{"ttl": {strconv.FormatInt(ttl.Milliseconds(), 10)}, "a": {strconv.FormatInt(s.Ack, 10)}}
	var r PollReply
	st, err := s.C.DoHost(ctx, http.MethodGet, s.C.relay()+"/j/"+s.Socket+"?"+q.Encode(), s.Host, nil, &r)
	for _, m := range r.Messages {
		if m.Seq > s.Ack {
			s.Ack = m.Seq
		}
	}
	return r, st, err
}

// Close sends /c with code and reason.
func (s *Session) Close(ctx context.Context, code int, reason string) (int, error) {
	q := url.Values{"code": {strconv.Itoa(code)}, "reason": {reason}}
	return s.C.DoHost(ctx, http.MethodGet, s.C.relay()+"/c/"+s.Socket+"?"+q.Encode(), s.Host, nil, nil)
}

// Collect polls until want data messages (text or binary) arrived or a
// close message came, bounded by deadline.
func (s *Session) Collect(t testing.TB, want int, deadline time.Duration) []Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	var got []Msg
	for len(got) < want {
		r, st, err := s.Poll(ctx, 5*time.Second)
		if err != nil || st != http.StatusOK {
			t.Fatalf("poll: status %d, %+v, %v (after %d of %d messages)", st, r, err, len(got), want)
		}
		for _, m := range r.Messages {
			switch m.Type {
			case "text", "binary":
				got = append(got, m)
			case "close":
				return append(got, m)
			}
		}
	}
	return got
}
