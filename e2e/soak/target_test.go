package soak

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
	modeClient    = "client" // the client closes with closeByClient
	modeTarget    = "target" // the target closes with closeByTarget
	closeByClient = 4100
	closeByTarget = 4200
)

// clientMsg is the text of client message i of session id; every fifth
// is sent as binary. The filler varies the length.
func clientMsg(id, i int) string { return fmt.Sprintf("c%d:%d:%s", id, i, filler(i*37%400, i)) }

// pushMsg is the text of the target's own message j to session id.
func pushMsg(id, j int) string { return fmt.Sprintf("p%d:%d:%s", id, j, filler(j*53%1500, j)) }

// binary reports whether client message i goes as binary.
func binary(i int) bool { return i%5 == 0 }

func filler(n, seed int) string {
	b := make([]byte, n)
	for k := range b {
		b[k] = byte('a' + (seed+k)%26)
	}
	return string(b)
}

// targetSide is what the target saw of one session.
type targetSide struct {
	got        int  // client messages received, in order
	pushed     int  // own messages written
	closeCode  int  // of the client's close frame; 0: none seen
	closedSelf bool // the target closed with closeByTarget
	bad        []string
}

// soakTarget is a WebSocket server that echoes every message of a
// session, checking it is the next one in order, and pushes its own
// numbered stream of msgs messages (every pushEvery, 0: as fast as the
// relay reads). Its URL names the session: /?s=ID&mode=client|target.
type soakTarget struct {
	srv       *httptest.Server
	msgs      int
	pushEvery time.Duration

	mu    sync.Mutex
	sides map[int]*targetSide
	wg    sync.WaitGroup
	stop  chan struct{} // closed at cleanup: handlers return
}

func newSoakTarget(t testing.TB, msgs int, pushEvery time.Duration) *soakTarget {
	t.Helper()
	tg := &soakTarget{msgs: msgs, pushEvery: pushEvery, sides: make(map[int]*targetSide), stop: make(chan struct{})}
	tg.srv = httptest.NewServer(http.HandlerFunc(tg.serve))
	t.Cleanup(func() {
		close(tg.stop)
		tg.srv.CloseClientConnections()
		tg.srv.Close()
		tg.wg.Wait()
	})
	return tg
}

// url is the target URL of session id through addr (a proxy or the
// server itself).
func (tg *soakTarget) url(addr string, id int, mode string) string {
	return "ws://" + addr + "/?s=" + strconv.Itoa(id) + "&mode=" + mode
}

// addr is the server's own address.
func (tg *soakTarget) addr() string { return tg.srv.Listener.Addr().String() }

// side returns (a copy of) what the target saw of session id.
func (tg *soakTarget) side(id int) targetSide {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if s := tg.sides[id]; s != nil {
		c := *s
		c.bad = append([]string(nil), s.bad...)
		return c
	}
	return targetSide{}
}

// update runs f on session id's record under the lock.
func (tg *soakTarget) update(id int, f func(s *targetSide)) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	s := tg.sides[id]
	if s == nil {
		s = &targetSide{}
		tg.sides[id] = s
	}
	f(s)
}

func (tg *soakTarget) serve(w http.ResponseWriter, r *http.Request) {
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
	tg.echo(ctx, c, id, r.URL.Query().Get("mode") == modeTarget, pushed)
}

// push writes the target's own numbered messages.
func (tg *soakTarget) push(ctx context.Context, c *websocket.Conn, id int) {
	for j := 1; j <= tg.msgs; j++ {
		if tg.pushEvery > 0 && !sleepCtx(ctx, tg.pushEvery) {
			return
		}
		if err := c.Write(ctx, websocket.MessageText, []byte(pushMsg(id, j))); err != nil {
			return
		}
		tg.update(id, func(s *targetSide) { s.pushed = j })
	}
}

// echo reads the client's messages, checks each is the next in order,
// and echoes it. In target mode it closes once it has them all and has
// pushed its own.
func (tg *soakTarget) echo(ctx context.Context, c *websocket.Conn, id int, closeSelf bool, pushed <-chan struct{}) {
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			if code := websocket.CloseStatus(err); code != -1 {
				tg.update(id, func(s *targetSide) { s.closeCode = int(code) })
			}
			return
		}
		var n int
		tg.update(id, func(s *targetSide) {
			n = s.got + 1
			wantTyp := websocket.MessageText
			if binary(n) {
				wantTyp = websocket.MessageBinary
			}
			if string(data) != clientMsg(id, n) || typ != wantTyp {
				s.bad = append(s.bad, fmt.Sprintf("target: session %d: got %s %.40q, want message %d", id, typ, data, n))
				return
			}
			s.got = n
		})
		if err := c.Write(ctx, typ, data); err != nil {
			return
		}
		if closeSelf && n == tg.msgs {
			select {
			case <-pushed:
			case <-ctx.Done():
				return
			}
			tg.update(id, func(s *targetSide) { s.closedSelf = true })
			_ = c.Close(closeByTarget, "done")
			return
		}
	}
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
