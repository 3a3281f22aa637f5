// Package attack runs the hostile clients of the relay's memory tests
// (issue 10): clients that hold no session and try to make the relay
// hold memory for them. Each attacker is one connection on loopback that
// sends one request to a session path, reads the answer, and holds its
// end of the connection open until the whole attack is done, so every
// attacker is connected at once when the caller measures.
//
// The kinds:
//   - Slow: the head of a POST announcing a BodySize body to an unknown
//     socket, and not a byte of the body.
//   - Bomb: a POST of BodySize bytes of distinct empty keys
//     ("0=&1=&2=…") to an unknown socket.
//   - Forged: the head of a POST announcing a BodySize body to a live
//     socket, on a host that is not the session's.
//
// The relay is expected to answer each at once with 403 socket and close
// the connection; Result counts who was.
package attack

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kind is a kind of attacker.
type Kind int

// The kinds of attacker (see the package comment).
const (
	Slow Kind = iota
	Bomb
	Forged
	kinds
)

func (k Kind) String() string {
	return [...]string{"slow body", "parameter bomb", "forged host"}[k]
}

// Config configures Run. Zero fields take the defaults beside them.
type Config struct {
	// Addr is the relay's address to dial (host:port).
	Addr string
	// FQDN is the relay's fqdn; slow bodies and bombs name a made-up
	// session host under it, as a client guessing ids would.
	FQDN string
	// LiveSocket is a live session's socket id, named by the forged-host
	// attackers.
	LiveSocket string
	// N is the number of attackers of each kind. Default 1,000.
	N int
	// BodySize is the body announced (and, for bombs, sent). Default
	// 3 MiB, the relay's default body limit.
	BodySize int
	// Batch is how many attackers start at once; Check runs between
	// batches. Default 100.
	Batch int
	// Check, if set, runs after each batch has been answered, and once
	// more when every attacker holds its connection; an error stops the
	// attack (the memory bound was crossed: going on would only grow it).
	Check func() error
	// Timeout bounds one attacker's dial, write and wait for an answer.
	// Default 10s.
	Timeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.N == 0 {
		c.N = 1000
	}
	if c.BodySize == 0 {
		c.BodySize = 3 << 20
	}
	if c.Batch == 0 {
		c.Batch = 100
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	return c
}

// Result is what the attackers saw.
type Result struct {
	// Refused counts, by kind, the attackers answered 403 socket whose
	// connection the relay then closed.
	Refused [kinds]int
	// Errors lists, by kind, the first few other outcomes.
	Errors [kinds][]string
}

// Shortfalls describes each kind whose n attackers were not all
// refused at once with 403 socket and a close; none when all were.
func (r Result) Shortfalls(n int) []string {
	var out []string
	for k, refused := range r.Refused {
		if refused != n {
			out = append(out, fmt.Sprintf("%v: %d of %d refused at once with 403 socket and a close; others: %q", Kind(k), refused, n, r.Errors[k]))
		}
	}
	return out
}

// Attack is a running attack: its attackers hold their connections
// until Release.
type Attack struct {
	cfg  Config
	bomb []byte
	hold chan struct{} // closed by Release
	wg   sync.WaitGroup

	mu  sync.Mutex
	res Result
}

// Run starts the attackers of every kind in batches and returns once
// each has been answered (or timed out), with all of them still holding
// their connections; the caller measures, then calls Release. An error
// from Check stops the launch early and is returned (the attack must
// still be released).
func Run(ctx context.Context, cfg Config) (*Attack, error) {
	cfg = cfg.withDefaults()
	a := &Attack{cfg: cfg, bomb: Bombs(cfg.BodySize), hold: make(chan struct{})}
	for _, k := range []Kind{Slow, Forged, Bomb} {
		for start := 0; start < cfg.N; start += cfg.Batch {
			if err := a.batch(ctx, k, min(cfg.Batch, cfg.N-start)); err != nil {
				return a, err
			}
		}
	}
	if cfg.Check != nil {
		return a, cfg.Check()
	}
	return a, nil
}

// batch starts n attackers of kind k and waits until each has had its
// answer.
func (a *Attack) batch(ctx context.Context, k Kind, n int) error {
	var answered sync.WaitGroup
	answered.Add(n)
	a.wg.Add(n)
	for range n {
		go func() {
			defer a.wg.Done()
			a.one(ctx, k, answered.Done)
		}()
	}
	answered.Wait()
	if a.cfg.Check != nil {
		return a.cfg.Check()
	}
	return nil
}

// Release lets every attacker close its connection and waits for them.
// It returns the result.
func (a *Attack) Release() Result {
	close(a.hold)
	a.wg.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.res
}

// one is one attacker: answered is called once its answer is read (or
// has failed); the connection is then held until Release.
func (a *Attack) one(ctx context.Context, k Kind, answered func()) {
	once := sync.OnceFunc(answered)
	defer once()
	d := net.Dialer{Timeout: a.cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", a.cfg.Addr)
	if err != nil {
		a.note(k, fmt.Errorf("dial: %w", err))
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(a.cfg.Timeout))
	path, host, body := "/s/"+randomID(), randomLabel()+"."+a.cfg.FQDN, []byte(nil)
	switch k {
	case Forged:
		path, host = "/s/"+a.cfg.LiveSocket, "evil.example"
	case Bomb:
		body = a.bomb
	}
	head := "POST " + path + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: text/plain\r\nContent-Length: " +
		strconv.Itoa(a.cfg.BodySize) + "\r\n\r\n"
	if _, err := io.WriteString(conn, head); err != nil {
		a.note(k, fmt.Errorf("writing the head: %w", err))
		return
	}
	// The body goes out beside the wait for the answer: a relay that
	// answers from the head stops reading it.
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		if body != nil {
			_, _ = conn.Write(body)
		}
	}()
	err = readRefusal(conn)
	once()
	a.note(k, err)
	select {
	case <-a.hold:
	case <-ctx.Done():
	}
	_ = conn.Close() // ends a write still blocked
	<-wrote
}

// readRefusal reads one answer: it must be 403 with the word socket,
// and the relay must then close the connection.
func readRefusal(conn net.Conn) error {
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("no answer: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), `"code":"socket"`) {
		return fmt.Errorf("answered %d %.200s", resp.StatusCode, b)
	}
	// Closed: EOF, or a reset when the relay stopped reading a body.
	var ne net.Error
	if _, err := br.ReadByte(); err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("connection not closed after the answer (%v)", err)
	}
	return nil
}

func (a *Attack) note(k Kind, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil {
		a.res.Refused[k]++
		return
	}
	if len(a.res.Errors[k]) < 5 {
		a.res.Errors[k] = append(a.res.Errors[k], err.Error())
	}
}

// Bombs is a body of n bytes of distinct empty keys: "0=&1=&2=…".
func Bombs(n int) []byte {
	b := make([]byte, 0, n+16)
	for i := 0; len(b) < n; i++ {
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, "=&"...)
	}
	return b[:n]
}

// randomID is a made-up socket id, spelled as real ones are.
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// randomLabel is a made-up session subdomain label.
func randomLabel() string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [12]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b[:])
}
