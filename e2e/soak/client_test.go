package soak

import (
	"context"
	"encoding/base64"
	"fmt"
	"github.com/polysocket/polysocket/internal/soaktarget"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of the soak client, a Go twin of polysocket.js's relay
// transport.
const (
	pollTTL     = time.Second      // the long poll's hold
	reqTimeout  = 15 * time.Second // one request: pollTTL, a 2 s pause and latency fit
	giveUp      = 8 * time.Second  // a request failing this long ends the session 1006
	backoffMin  = 10 * time.Millisecond
	backoffMax  = time.Second
	senders     = 8  // sends in flight per session
	sendWindow  = 32 // a send's n is at most this far past the lowest unconfirmed (the relay holds 64)
	maxBodyRead = 4 << 20
)

// stats are the soak's counters, shared by its sessions.
type stats struct {
	requests, sendRetries, pollRetries, closeRetries atomic.Int64
	violations                                       sync.Mutex
	list                                             []string
}

// violation records a broken promise.
func (st *stats) violation(format string, args ...any) {
	st.violations.Lock()
	defer st.violations.Unlock()
	st.list = append(st.list, fmt.Sprintf(format, args...))
}

// broken is the violations so far.
func (st *stats) broken() []string {
	st.violations.Lock()
	defer st.violations.Unlock()
	return append([]string(nil), st.list...)
}

// newHTTP is the soak's HTTP client: every host name's port is dialed on
// 127.0.0.1, so each session reaches the relay (or the proxy before it)
// by its own {uniq}.localhost:PORT name, with that Host header.
func newHTTP() *http.Client {
	d := net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
		},
		MaxIdleConnsPerHost: senders + 1,
	}}
}

// client is one session as a page would drive it: senders workers send
// numbered messages, each retried with its n until it is accepted, and
// one poller long-polls with acks, retrying with the same a.
type client struct {
	id     int
	mode   string
	msgs   int
	base   string // http://{fqdn}
	socket string
	http   *http.Client
	st     *stats
	rnd    *rand.Rand // jitter; used under mu
	mu     sync.Mutex

	// Send window, under mu.
	next, low int
	ok        map[int]bool
	stopped   bool
	cond      *sync.Cond

	// Receive side, owned by the poller.
	ack            int64
	echoes, pushes int
	closeCode      int
	closeReason    string
	closedAt       time.Time
	lostHere       bool // the close is the client's own 1006: no close message came
	closeSent      bool
}

func newClient(id int, mode string, msgs int, fqdn, socket string, hc *http.Client, st *stats, seed uint64) *client {
	c := &client{id: id, mode: mode, msgs: msgs, base: "http://" + fqdn, socket: socket, http: hc, st: st,
		rnd: rand.New(rand.NewPCG(seed, uint64(id))), next: 1, low: 1, ok: make(map[int]bool)}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// run drives the session to its end.
func (c *client) run(ctx context.Context) {
	defer c.http.CloseIdleConnections()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() { c.sendLoop(ctx) })
	}
	c.pollLoop(ctx)
	c.stopSending()
	cancel()
	wg.Wait()
}

// take hands out the next n to send, waiting while it would be too far
// past the lowest unconfirmed one; false when all are out or sending
// stopped.
func (c *client) take() (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.next <= c.msgs && c.next >= c.low+sendWindow && !c.stopped {
		c.cond.Wait()
	}
	if c.next > c.msgs || c.stopped {
		return 0, false
	}
	c.next++
	return c.next - 1, true
}

func (c *client) confirm(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ok[n] = true
	for c.ok[c.low] {
		delete(c.ok, c.low)
		c.low++
	}
	c.cond.Broadcast()
}

func (c *client) stopSending() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	c.cond.Broadcast()
}

func (c *client) sendLoop(ctx context.Context) {
	for {
		n, ok := c.take()
		if !ok {
			return
		}
		if !c.send(ctx, n) {
			c.stopSending()
			return
		}
		c.confirm(n)
	}
}

// send sends message n until the relay accepts it (201); false when the
// session is gone or sending stopped.
func (c *client) send(ctx context.Context, n int) bool {
	q := url.Values{"n": {strconv.Itoa(n)}}
	method := http.MethodGet
	if soaktarget.Binary(n) {
		method = http.MethodPost
		q.Set("t", "b")
		q.Set("d", base64.StdEncoding.EncodeToString([]byte(soaktarget.ClientMsg(c.id, n))))
	} else {
		q.Set("t", "t")
		q.Set("d", soaktarget.ClientMsg(c.id, n))
	}
	return c.retry(ctx, &c.st.sendRetries, "send "+strconv.Itoa(n), func() (bool, error) {
		st, _, err := c.do(ctx, method, "/s/"+c.socket, q)
		switch {
		case err != nil || st == http.StatusServiceUnavailable || st >= 500:
			return false, fmt.Errorf("status %d: %v", st, err)
		case st == http.StatusCreated:
			return true, nil
		case st == http.StatusForbidden: // closed: the poll says how
			return true, errGone
		default:
			c.st.violation("session %d: send %d answered %d", c.id, n, st)
			return true, errGone
		}
	}) == nil
}

// errGone ends a retry loop: the session is over.
var errGone = fmt.Errorf("session gone")

// retry runs try until it is done, with a bounded backoff and jitter
// between failures, counting retries; after giveUp of failures the
// session is lost (1006). It returns try's error when try says done.
func (c *client) retry(ctx context.Context, retries *atomic.Int64, what string, try func() (bool, error)) error {
	var failedAt time.Time
	for k := 0; ; k++ {
		done, err := try()
		if done {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if failedAt.IsZero() {
			failedAt = time.Now()
		} else if time.Since(failedAt) > giveUp {
			return fmt.Errorf("%s: relay unreachable for %v: %w", what, giveUp, err)
		}
		retries.Add(1)
		if !sleepCtx(ctx, c.backoff(k)) {
			return ctx.Err()
		}
	}
}

// backoff is the wait before retry k: doubling from backoffMin up to
// backoffMax, plus up to half again of jitter.
func (c *client) backoff(k int) time.Duration {
	d := backoffMin << min(k, 10)
	d = min(d, backoffMax)
	c.mu.Lock()
	defer c.mu.Unlock()
	return d + time.Duration(c.rnd.Int64N(int64(d/2)+1))
}

// do sends one request (q in the query, or as the body of a POST) and
// returns the status and body.
func (c *client) do(ctx context.Context, method, path string, q url.Values) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, reqTimeout)
	defer cancel()
	u := c.base + path
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(q.Encode())
	} else {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	c.st.requests.Add(1)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyRead))
	return resp.StatusCode, b, err
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
