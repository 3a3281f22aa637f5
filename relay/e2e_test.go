package relay_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/polysocket/polysocket/internal/testenv"
	"github.com/polysocket/polysocket/session"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustStatus(t *testing.T, what string, st int, err error, want int) {
	t.Helper()
	if err != nil || st != want {
		t.Fatalf("%s: status %d, err %v; want %d", what, st, err, want)
	}
}

func newEcho(t *testing.T) (*testenv.Stack, *testenv.Target, *testenv.Client) {
	st := testenv.NewStack(t, testenv.StackOptions{})
	tg := testenv.NewTarget(t, testenv.TargetOptions{})
	return st, tg, &testenv.Client{Base: st.URL}
}

func TestEchoText(t *testing.T) {
	_, tg, c := newEcho(t)
	s := c.Open(t, tg.URL, nil)
	ctx := ctxT(t, 10*time.Second)
	for _, text := range []string{"hello", "", "line\u2028sep\u2029para", "astral 😀𝄞 and <\"quoted\"> & \\back\\", strings.Repeat("x", 5000)} {
		st, err := s.SendText(ctx, text)
		mustStatus(t, "send", st, err, http.StatusCreated)
		got := s.Collect(t, 1, 10*time.Second)
		if got[0].Type != "text" || got[0].Data != text {
			t.Fatalf("echo of %q: got %+v", text, got[0])
		}
	}
}

func TestEchoBinary(t *testing.T) {
	_, tg, c := newEcho(t)
	s := c.Open(t, tg.URL, nil)
	ctx := ctxT(t, 10*time.Second)
	for _, size := range []int{0, 1, 2, 3, 1000, 70000} {
		b := make([]byte, size)
		_, _ = rand.Read(b)
		st, err := s.SendBinary(ctx, b)
		mustStatus(t, "send", st, err, http.StatusCreated)
		got := s.Collect(t, 1, 10*time.Second)
		data, err := got[0].Bytes()
		if got[0].Type != "binary" || err != nil || !bytes.Equal(data, b) {
			t.Fatalf("binary echo of %d bytes: got type %s, %d bytes, err %v", size, got[0].Type, len(data), err)
		}
	}
}

// JSONP answers must be JavaScript that a U+2028-naive engine can run:
// the separators arrive escaped.
func TestPollJSONPEscapesLineSeparators(t *testing.T) {
	st, tg, c := newEcho(t)
	s := c.Open(t, tg.URL, nil)
	ctx := ctxT(t, 10*time.Second)
	code, err := s.SendText(ctx, "a\u2028b\u2029c")
	mustStatus(t, "send", code, err, http.StatusCreated)
	testenv.WaitFor(t, 5*time.Second, "the echo", func() bool {
		ss, err := st.Relay.Registry().Get(s.Socket)
		return err == nil && ss.Buffered() > 0
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+"/j/"+s.Socket+"?cb=cb.x&ttl=5000&a=0", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = s.Host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	body := buf.String()
	if !strings.HasPrefix(body, "/**/cb.x({") || !strings.HasSuffix(body, "});") {
		t.Fatalf("not a JSONP answer: %q", body)
	}
	if strings.ContainsAny(body, "\u2028\u2029") || !strings.Contains(body, `a\u2028b\u2029c`) {
		t.Fatalf("line separators not escaped: %q", body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/javascript; charset=utf-8" {
		t.Fatalf("content type %q", ct)
	}
}

// A 1 MiB message goes as fragments and reaches the target as one
// message; the echo comes back whole (alone in its poll answer, being
// over the per-answer cap).
func TestFragmentedMegabyte(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	st := testenv.NewStack(t, testenv.StackOptions{})
	tg := testenv.NewTarget(t, testenv.TargetOptions{Handle: func(ctx context.Context, c *websocket.Conn) {
		for {
			typ, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			mu.Lock()
			sizes = append(sizes, len(data))
			mu.Unlock()
			if err := c.Write(ctx, typ, data); err != nil {
				return
			}
		}
	}})
	c := &testenv.Client{Base: st.URL}
	s := c.Open(t, tg.URL, nil)
	ctx := ctxT(t, 30*time.Second)

	msg := make([]byte, 1<<20)
	_, _ = rand.Read(msg)
	const chunk = 1500 // bytes per fragment, as a URL-bound client would
	for off := 0; off < len(msg); off += chunk {
		end := min(off+chunk, len(msg))
		s.N++
		q := url.Values{"t": {"b"}, "d": {base64.StdEncoding.EncodeToString(msg[off:end])}, "n": {strconv.FormatInt(s.N, 10)}}
		if end < len(msg) {
			q.Set("f", "1")
		}
		code, err := s.SendRaw(ctx, q)
		mustStatus(t, "fragment", code, err, http.StatusCreated)
	}
	got := s.Collect(t, 1, 20*time.Second)
	data, _ := got[0].Bytes()
	if !bytes.Equal(data, msg) {
		t.Fatalf("echo differs: %d bytes", len(data))
	}
	mu.Lock()
	gotSizes := append([]int(nil), sizes...)
	mu.Unlock()
	if len(gotSizes) != 1 || gotSizes[0] != 1<<20 {
		t.Fatalf("target got messages of sizes %v, want one of %d", gotSizes, 1<<20)
	}
	// One byte more is refused and the session goes on.
	s.N++
	code, err := s.SendRaw(ctx, url.Values{"t": {"t"}, "d": {strings.Repeat("y", 1<<20)}, "n": {strconv.FormatInt(s.N, 10)}, "f": {"1"}})
	mustStatus(t, "fragment", code, err, http.StatusCreated)
	s.N++
	code, err = s.SendRaw(ctx, url.Values{"t": {"t"}, "d": {"z"}, "n": {strconv.FormatInt(s.N, 10)}})
	mustStatus(t, "overflowing fragment", code, err, http.StatusRequestEntityTooLarge)
	code, err = s.SendText(ctx, "after")
	mustStatus(t, "send after 413", code, err, http.StatusCreated)
	if got := s.Collect(t, 1, 10*time.Second); got[0].Data != "after" {
		t.Fatalf("after a 413: got %+v", got[0])
	}
}

// Sends arriving out of order are applied in n order; a repeat is
// accepted without being sent again.
func TestSendOrderAndRetry(t *testing.T) {
	_, tg, c := newEcho(t)
	s := c.Open(t, tg.URL, nil)
	ctx := ctxT(t, 10*time.Second)
	send := func(n int, d string) {
		t.Helper()
		code, err := s.SendRaw(ctx, url.Values{"t": {"t"}, "d": {d}, "n": {strconv.Itoa(n)}})
		mustStatus(t, "send "+d, code, err, http.StatusCreated)
	}
	send(3, "three")
	send(2, "two")
	send(3, "three again")
	send(1, "one")
	send(2, "two again")
	send(4, "four")
	got := s.Collect(t, 4, 10*time.Second)
	var texts []string
	for _, m := range got {
		texts = append(texts, m.Data)
	}
	if strings.Join(texts, ",") != "one,two,three,four" {
		t.Fatalf("target order: %v", texts)
	}
	r, _, _ := s.Poll(ctx, 0)
	if len(r.Messages) != 1 || r.Messages[0].Type != "heartbeat" {
		t.Fatalf("extra messages after the four: %+v", r.Messages)
	}
}

// A poll answer the client throws away costs nothing: polling again with
// the old ack gets the same messages.
func TestLostPollAnswer(t *testing.T) {
	st, tg, c := newEcho(t)
	s := c.Open(t, tg.URL, nil)
	ctx := ctxT(t, 10*time.Second)
	for _, d := range []string{"a", "b", "c"} {
		code, err := s.SendText(ctx, d)
		mustStatus(t, "send", code, err, http.StatusCreated)
	}
	testenv.WaitFor(t, 5*time.Second, "the three echoes", func() bool {
		ss, err := st.Relay.Registry().Get(s.Socket)
		return err == nil && ss.Buffered() == 3
	})
	first, code, err := s.Poll(ctx, time.Second)
	mustStatus(t, "poll", code, err, http.StatusOK)
	s.Ack = 0 // the answer was lost on the way
	again, code, err := s.Poll(ctx, time.Second)
	mustStatus(t, "re-poll", code, err, http.StatusOK)
	if len(first.Messages) != 3 || len(again.Messages) != 3 {
		t.Fatalf("polls got %+v and %+v, want the 3 messages twice", first.Messages, again.Messages)
	}
	for i := range first.Messages {
		if first.Messages[i] != again.Messages[i] {
			t.Fatalf("message %d differs: %+v vs %+v", i, first.Messages[i], again.Messages[i])
		}
	}
	// Acking them empties the queue.
	r, code, err := s.Poll(ctx, 0)
	mustStatus(t, "acking poll", code, err, http.StatusOK)
	if len(r.Messages) != 1 || r.Messages[0].Type != "heartbeat" {
		t.Fatalf("after the ack: %+v", r.Messages)
	}
}

func TestHeartbeatAfterTTL(t *testing.T) {
	_, tg, c := newEcho(t)
	s := c.Open(t, tg.URL, nil)
	ctx := ctxT(t, 10*time.Second)
	r, code, err := s.Poll(ctx, 100*time.Millisecond)
	mustStatus(t, "poll", code, err, http.StatusOK)
	if !r.OK || len(r.Messages) != 1 || r.Messages[0].Type != "heartbeat" {
		t.Fatalf("want one heartbeat, got %+v", r)
	}
}

// A newer poll answers the older one at once with no messages.
func TestNewerPollAnswersOlder(t *testing.T) {
	st, tg, c := newEcho(t)
	s := c.Open(t, tg.URL, nil)
	ctx := ctxT(t, 20*time.Second)
	first := make(chan testenv.PollReply, 1)
	go func() {
		var r testenv.PollReply
		_, _ = c.DoHost(ctx, http.MethodGet, c.Base+"/j/"+s.Socket+"?ttl=15000&a=0", s.Host, nil, &r)
		first <- r
	}()
	testenv.WaitFor(t, 5*time.Second, "the first poll to be held", func() bool {
		ss, err := st.Relay.Registry().Get(s.Socket)
		return err == nil && ss.Polling()
	})
	second := make(chan testenv.PollReply, 1)
	go func() {
		var r testenv.PollReply
		_, _ = c.DoHost(ctx, http.MethodGet, c.Base+"/j/"+s.Socket+"?ttl=15000&a=0", s.Host, nil, &r)
		second <- r
	}()
	select {
	case r := <-first:
		if !r.OK || len(r.Messages) != 0 {
			t.Fatalf("superseded poll answered %+v, want ok with no messages", r)
		}
	case <-ctx.Done():
		t.Fatal("the older poll was not answered")
	}
	code, err := s.SendText(ctx, "for the second")
	mustStatus(t, "send", code, err, http.StatusCreated)
	r := <-second
	if len(r.Messages) != 1 || r.Messages[0].Data != "for the second" {
		t.Fatalf("second poll got %+v", r)
	}
}

func TestTargetCloses4001(t *testing.T) {
	st := testenv.NewStack(t, testenv.StackOptions{})
	tg := testenv.NewTarget(t, testenv.TargetOptions{Handle: func(ctx context.Context, c *websocket.Conn) {
		_, _, err := c.Read(ctx)
		if err == nil {
			_ = c.Close(4001, "target says bye")
		}
	}})
	c := &testenv.Client{Base: st.URL}
	s := c.Open(t, tg.URL, nil)
	ctx := ctxT(t, 10*time.Second)
	code, err := s.SendText(ctx, "bye?")
	mustStatus(t, "send", code, err, http.StatusCreated)
	got := s.Collect(t, 1, 10*time.Second)
	if m := got[len(got)-1]; m.Type != "close" || m.Code != 4001 || m.Reason != "target says bye" || m.Seq != 1 {
		t.Fatalf("close message %+v", m)
	}
	// After the close, sends are refused at once…
	code, err = s.SendText(ctx, "late")
	mustStatus(t, "send after close", code, err, http.StatusForbidden)
	// …and the close is re-delivered until acked, then the socket is gone.
	s.Ack = 0
	r, code, err := s.Poll(ctx, 0)
	mustStatus(t, "re-poll", code, err, http.StatusOK)
	if len(r.Messages) != 1 || r.Messages[0].Type != "close" {
		t.Fatalf("re-delivery %+v", r)
	}
	// The poll that acks the close succeeds quietly with nothing, so a
	// page's last script load does not fail; then the socket is gone.
	s.Ack = 1
	r, code, err = s.Poll(ctx, 0)
	mustStatus(t, "poll acking the close", code, err, http.StatusOK)
	if !r.OK || len(r.Messages) != 0 {
		t.Fatalf("ack of the close answered %+v, want ok with no messages", r)
	}
	_, code, err = s.Poll(ctx, 0)
	mustStatus(t, "poll after the ack", code, err, http.StatusForbidden)
}

func TestClientCloses4002(t *testing.T) {
	st := testenv.NewStack(t, testenv.StackOptions{})
	var tg *testenv.Target
	tg = testenv.NewTarget(t, testenv.TargetOptions{Handle: func(ctx context.Context, c *websocket.Conn) { tg.RecordingEcho(ctx, c) }})
	c := &testenv.Client{Base: st.URL}
	s := c.Open(t, tg.URL, nil)
	ctx := ctxT(t, 10*time.Second)

	// A poll held during the close answers with the client's own code.
	held := make(chan testenv.PollReply, 1)
	go func() {
		var r testenv.PollReply
		_, _ = c.DoHost(ctx, http.MethodGet, c.Base+"/j/"+s.Socket+"?ttl=8000&a=0", s.Host, nil, &r)
		held <- r
	}()
	testenv.WaitFor(t, 5*time.Second, "the poll to be held", func() bool {
		ss, err := st.Relay.Registry().Get(s.Socket)
		return err == nil && ss.Polling()
	})
	code, err := s.Close(ctx, 4002, "client done")
	mustStatus(t, "close", code, err, http.StatusOK)
	r := <-held
	if len(r.Messages) != 1 || r.Messages[0].Type != "close" || r.Messages[0].Code != 4002 || r.Messages[0].Reason != "client done" {
		t.Fatalf("held poll got %+v", r)
	}
	testenv.WaitFor(t, 5*time.Second, "the target to see 4002", func() bool {
		cl := tg.Closes()
		return len(cl) == 1 && cl[0].Code == 4002 && cl[0].Reason == "client done"
	})
	code, err = s.Close(ctx, 1000, "")
	mustStatus(t, "second close", code, err, http.StatusForbidden)
}

func TestIdleTimeout(t *testing.T) {
	st := testenv.NewStack(t, testenv.StackOptions{Session: session.Config{IdleTimeout: 300 * time.Millisecond, CloseGrace: 300 * time.Millisecond}})
	var tg *testenv.Target
	tg = testenv.NewTarget(t, testenv.TargetOptions{Handle: func(ctx context.Context, c *websocket.Conn) { tg.RecordingEcho(ctx, c) }})
	c := &testenv.Client{Base: st.URL}
	s := c.Open(t, tg.URL, nil)
	testenv.WaitFor(t, 5*time.Second, "the target to see 1001", func() bool {
		cl := tg.Closes()
		return len(cl) == 1 && cl[0].Code == websocket.StatusGoingAway
	})
	testenv.WaitFor(t, 5*time.Second, "the session to be forgotten", func() bool {
		_, err := st.Relay.Registry().Get(s.Socket)
		return err != nil
	})
	if n := st.Relay.Registry().Len(); n != 0 {
		t.Fatalf("%d live sessions after idle expiry", n)
	}
}

// A held poll keeps the session alive past the idle timeout.
func TestPollKeepsSessionAlive(t *testing.T) {
	st := testenv.NewStack(t, testenv.StackOptions{Session: session.Config{IdleTimeout: 200 * time.Millisecond}})
	tg := testenv.NewTarget(t, testenv.TargetOptions{})
	c := &testenv.Client{Base: st.URL}
	s := c.Open(t, tg.URL, nil)
	ctx := ctxT(t, 10*time.Second)
	r, code, err := s.Poll(ctx, 600*time.Millisecond)
	mustStatus(t, "long poll", code, err, http.StatusOK)
	if r.Messages[0].Type != "heartbeat" {
		t.Fatalf("got %+v", r)
	}
	code, err = s.SendText(ctx, "still here")
	mustStatus(t, "send", code, err, http.StatusCreated)
}

// A target that floods 20 MiB while the client does not poll: the relay
// stops reading at its buffer bound, and every byte arrives, in order,
// once the client polls.
func TestFloodBackpressure(t *testing.T) {
	const (
		msgSize = 16 << 10
		total   = 20 << 20
		count   = total / msgSize
	)
	st := testenv.NewStack(t, testenv.StackOptions{})
	tg := testenv.NewTarget(t, testenv.TargetOptions{Handle: func(ctx context.Context, c *websocket.Conn) {
		buf := make([]byte, msgSize)
		for i := 0; i < count; i++ {
			binary.BigEndian.PutUint64(buf, uint64(i))
			if err := c.Write(ctx, websocket.MessageBinary, buf); err != nil {
				return
			}
		}
		_ = c.Close(websocket.StatusNormalClosure, "flood done")
	}})
	c := &testenv.Client{Base: st.URL}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := c.Open(t, tg.URL, nil)
	ss, err := st.Relay.Registry().Get(s.Socket)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the relay to stop reading", ss.Paused)
	bound := ss.Config().MaxBuffered + msgSize
	if b := ss.Buffered(); b > bound {
		t.Fatalf("buffered %d bytes, bound %d", b, bound)
	}
	var during runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&during)
	if grew := int64(during.HeapAlloc) - int64(before.HeapAlloc); grew > 8<<20 {
		t.Fatalf("heap grew by %d bytes while the target flooded (bound %d buffered)", grew, bound)
	}

	next := uint64(0)
	deadline := time.Now().Add(60 * time.Second)
	ctx := ctxT(t, 60*time.Second)
	var closeMsg *testenv.Msg
	for closeMsg == nil && time.Now().Before(deadline) {
		r, code, err := s.Poll(ctx, 5*time.Second)
		mustStatus(t, "poll", code, err, http.StatusOK)
		for _, m := range r.Messages {
			if m.Type == "close" {
				closeMsg = &m
				break
			}
			if m.Type != "binary" {
				continue
			}
			b, _ := m.Bytes()
			if len(b) != msgSize || binary.BigEndian.Uint64(b) != next {
				t.Fatalf("message %d: got %d bytes starting %d", next, len(b), binary.BigEndian.Uint64(b))
			}
			next++
		}
		if b := ss.Buffered(); b > bound {
			t.Fatalf("buffered %d bytes, bound %d", b, bound)
		}
	}
	if next != count {
		t.Fatalf("got %d of %d messages", next, count)
	}
	if closeMsg == nil || closeMsg.Code != 1000 || closeMsg.Reason != "flood done" {
		t.Fatalf("after the flood: %+v", closeMsg)
	}
}

// 200 sessions at once, each echoing 100 numbered messages: none lost,
// duplicated or reordered.
func TestManySessions(t *testing.T) {
	const sessions, each = 200, 100
	st, tg, _ := newEcho(t)
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for i := 0; i < sessions; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A transport per session, as each page has its own: one
			// shared by 200 sessions queued them on its lock under load.
			// The bound catches a hang, not slowness (40,000 requests
			// under -race on a shared machine).
			tr := &http.Transport{MaxIdleConnsPerHost: 2}
			defer tr.CloseIdleConnections()
			c := &testenv.Client{Base: st.URL, HTTP: &http.Client{Transport: tr, Timeout: 3 * time.Minute}}
			errs <- echoNumbered(c, tg.URL, i, each)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func echoNumbered(c *testenv.Client, target string, id, count int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, code, err := c.Create(ctx, target, nil)
	if err != nil || !r.OK {
		return fmt.Errorf("session %d: create: %d %+v %v", id, code, r, err)
	}
	s := &testenv.Session{C: c, Host: r.FQDN, Socket: r.Socket}
	sent := make(chan error, 1)
	go func() {
		for i := 0; i < count; i++ {
			code, err := s.SendText(ctx, fmt.Sprintf("%d:%d", id, i))
			if err != nil || code != http.StatusCreated {
				sent <- fmt.Errorf("session %d: send %d: %d %v", id, i, code, err)
				return
			}
		}
		sent <- nil
	}()
	next := 0
	for next < count {
		pr, code, err := s.Poll(ctx, 5*time.Second)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("session %d: poll: %d %v", id, code, err)
		}
		for _, m := range pr.Messages {
			if m.Type == "heartbeat" {
				continue
			}
			if want := fmt.Sprintf("%d:%d", id, next); m.Data != want {
				return fmt.Errorf("session %d: got %q, want %q", id, m.Data, want)
			}
			next++
		}
	}
	if err := <-sent; err != nil {
		return err
	}
	_, _ = s.Close(ctx, 1000, "")
	return nil
}

func TestForwardsOriginAndAddress(t *testing.T) {
	st := testenv.NewStack(t, testenv.StackOptions{Session: session.Config{ForwardOrigin: true, ForwardFor: true}})
	tg := testenv.NewTarget(t, testenv.TargetOptions{Subprotocols: []string{"chat.v2"}})
	ctx := ctxT(t, 10*time.Second)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, st.URL+"/create?"+url.Values{
		"from": {"test"}, "target": {tg.URL}, "token": {"dev"}, "protocols": {"chat.v1, chat.v2"},
	}.Encode(), nil)
	req.Header.Set("Origin", "https://page.example")
	var r testenv.CreateReply
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := jsonDecode(resp, &r); err != nil || !r.OK || r.Protocol != "chat.v2" {
		t.Fatalf("create: %+v %v", r, err)
	}
	// The target records the handshake once its Accept returns, which
	// may be just after the relay's dial did.
	testenv.WaitFor(t, 5*time.Second, "the target's handshake", func() bool { return len(tg.Headers()) > 0 })
	h := tg.Headers()[0]
	if h.Get("Origin") != "https://page.example" || h.Get("X-Forwarded-For") != "127.0.0.1" {
		t.Fatalf("target saw Origin %q, X-Forwarded-For %q", h.Get("Origin"), h.Get("X-Forwarded-For"))
	}
	if !strings.HasSuffix(r.FQDN, "."+strings.TrimPrefix(st.URL, "http://")) {
		t.Fatalf("fqdn %q is not a subdomain of the relay", r.FQDN)
	}
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }
