// Package soaktarget is the WebSocket target of polysocket's soak tests
// (e2e/soak and the browser soak): it echoes every message of a session,
// checking that each is the next in order, and pushes its own numbered
// stream. The message formats are here so that every soak client makes
// and checks the same ones.
package soaktarget

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Who ends a session that runs to its end, and with which close.
const (
	ModeClient    = "client" // the client closes with CloseByClient
	ModeTarget    = "target" // the target closes with CloseByTarget
	CloseByClient = 4100
	CloseByTarget = 4200
)

// ClientMsg is the text of client message i of session id; every fifth
// is sent as binary. The filler varies the length.
func ClientMsg(id, i int) string { return fmt.Sprintf("c%d:%d:%s", id, i, filler(i*37%400, i)) }

// PushMsg is the text of the target's own message j to session id.
func PushMsg(id, j int) string { return fmt.Sprintf("p%d:%d:%s", id, j, filler(j*53%1500, j)) }

// Binary reports whether client message i goes as binary.
func Binary(i int) bool { return i%5 == 0 }

func filler(n, seed int) string {
	b := make([]byte, n)
	for k := range b {
		b[k] = byte('a' + (seed+k)%26)
	}
	return string(b)
}

// Side is what the target saw of one session.
type Side struct {
	Got        int  // client messages received, in order
	Pushed     int  // own messages written
	Echoed     int  // echoes written
	CloseCode  int  // of the client's close frame; 0: none seen
	ClosedSelf bool // the target closed with CloseByTarget
	// Bad lists the messages that were not the next in order.
	Bad []string
}

// Target is a WebSocket server that echoes every message of a
// session, checking it is the next one in order, and pushes its own
// numbered stream of msgs messages (every pushEvery, 0: as fast as the
// relay reads). Its URL names the session: /?s=ID&mode=client|target.
type Target struct {
	srv       *httptest.Server
	msgs      int
	pushEvery time.Duration

	mu    sync.Mutex
	sides map[int]*Side
	wg    sync.WaitGroup
	stop  chan struct{} // closed at cleanup: handlers return
}

// New starts a target on loopback that pushes msgs messages to each
// session, one every pushEvery (0: as fast as they are read); it stops
// at cleanup, ending its connections.
func New(t testing.TB, msgs int, pushEvery time.Duration) *Target {
	t.Helper()
	tg := &Target{msgs: msgs, pushEvery: pushEvery, sides: make(map[int]*Side), stop: make(chan struct{})}
	tg.srv = httptest.NewServer(http.HandlerFunc(tg.serve))
	t.Cleanup(func() {
		close(tg.stop)
		tg.srv.CloseClientConnections()
		tg.srv.Close()
		tg.wg.Wait()
	})
	return tg
}

// URL is the target URL of session id through addr (a proxy or the
// server itself).
func (tg *Target) URL(addr string, id int, mode string) string {
	return "ws://" + addr + "/?s=" + strconv.Itoa(id) + "&mode=" + mode
}

// Addr is the server's own address.
func (tg *Target) Addr() string { return tg.srv.Listener.Addr().String() }

// Side returns (a copy of) what the target saw of session id.
func (tg *Target) Side(id int) Side {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if s := tg.sides[id]; s != nil {
		c := *s
		c.Bad = append([]string(nil), s.Bad...)
		return c
	}
	return Side{}
}

// update runs f on session id's record under the lock.
func (tg *Target) update(id int, f func(s *Side)) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	s := tg.sides[id]
	if s == nil {
		s = &Side{}
		tg.sides[id] = s
	}
	f(s)
}

func (tg *Target) serve(w http.ResponseWriter, r *http.Request) {
	tg.wg.Add(1)
	defer tg.wg.Done()
	id, err := strconv.Atoi(r.URL.Query().Get("s"))
	if err != nil {
		http.Error(w, "no session id", http.StatusBadRequest)
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() { // ends with the handler: cancel or stop
		select {
		case <-tg.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	pushed := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { defer close(pushed); tg.push(ctx, c, id) })
	tg.echo(ctx, c, id, r.URL.Query().Get("mode") == ModeTarget, pushed)
}

// push writes the target's own numbered messages.
func (tg *Target) push(ctx context.Context, c *websocket.Conn, id int) {
	for j := 1; j <= tg.msgs; j++ {
		if tg.pushEvery > 0 {
			select {
			case <-time.After(tg.pushEvery):
			case <-ctx.Done():
				return
			}
		}
		if err := c.Write(ctx, websocket.MessageText, []byte(PushMsg(id, j))); err != nil {
			return
		}
		tg.update(id, func(s *Side) { s.Pushed = j })
	}
}

// echo reads the client's messages, checks each is the next in order,
// and echoes it. In target mode it closes once it has them all and has
// pushed its own.
func (tg *Target) echo(ctx context.Context, c *websocket.Conn, id int, closeSelf bool, pushed <-chan struct{}) {
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			if code := websocket.CloseStatus(err); code != -1 {
				tg.update(id, func(s *Side) { s.CloseCode = int(code) })
			}
			return
		}
		var n int
		tg.update(id, func(s *Side) {
			n = s.Got + 1
			wantTyp := websocket.MessageText
			if Binary(n) {
				wantTyp = websocket.MessageBinary
			}
			if string(data) != ClientMsg(id, n) || typ != wantTyp {
				s.Bad = append(s.Bad, fmt.Sprintf("target: session %d: got %s %.40q, want message %d", id, typ, data, n))
				return
			}
			s.Got = n
		})
		if err := c.Write(ctx, typ, data); err != nil {
			return
		}
		tg.update(id, func(s *Side) { s.Echoed++ })
		if closeSelf && n == tg.msgs {
			select {
			case <-pushed:
			case <-ctx.Done():
				return
			}
			tg.update(id, func(s *Side) { s.ClosedSelf = true })
			_ = c.Close(CloseByTarget, "done")
			return
		}
	}
}
