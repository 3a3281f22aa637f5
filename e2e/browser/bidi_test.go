package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// bidi is a WebDriver BiDi connection (https://w3c.github.io/webdriver-bidi/):
// JSON commands with ids over a WebSocket, answered in any order, with
// events in between. One reader goroutine, owned by the bidi and waited
// for by close, routes the answers to their callers.
type bidi struct {
	c      *websocket.Conn
	ctx    context.Context // ends the reader
	cancel context.CancelFunc
	done   chan struct{} // closed when the reader returns
	// onEvent gets every event, on the reader goroutine; it must not
	// block or call the bidi.
	onEvent func(method string, params json.RawMessage)

	mu      sync.Mutex
	next    int
	waiting map[int]chan bidiAnswer
	err     error // why the reader stopped
}

// bidiAnswer is a command's answer.
type bidiAnswer struct {
	Type    string          `json:"type"` // success, error or event
	ID      *int            `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
	Method  string          `json:"method"` // events
	Params  json.RawMessage `json:"params"`
}

// bidiReadLimit bounds one message from the browser: an evaluation's
// value can be the events of a thousand messages.
const bidiReadLimit = 64 << 20

// bidiWriteTimeout bounds writing one command: the browser reads them
// promptly unless it is stuck.
const bidiWriteTimeout = 30 * time.Second

// dialBiDi connects to the browser's BiDi endpoint (ws://host:port/session).
// It sends no Origin header: Firefox refuses connections that carry one,
// as a page could otherwise drive the browser.
func dialBiDi(ctx context.Context, url string, onEvent func(string, json.RawMessage)) (*bidi, error) {
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(bidiReadLimit)
	rctx, cancel := context.WithCancel(context.Background())
	b := &bidi{c: c, ctx: rctx, cancel: cancel, done: make(chan struct{}), onEvent: onEvent, waiting: map[int]chan bidiAnswer{}}
	go b.read()
	return b, nil
}

// read routes answers to their waiting callers and events to onEvent
// until the connection fails or close ends it.
func (b *bidi) read() {
	defer close(b.done)
	for {
		_, msg, err := b.c.Read(b.ctx)
		if err != nil {
			b.fail(err)
			return
		}
		var a bidiAnswer
		if err := json.Unmarshal(msg, &a); err != nil {
			b.fail(fmt.Errorf("bad message from the browser: %w", err))
			return
		}
		if a.Type == "event" {
			if b.onEvent != nil {
				b.onEvent(a.Method, a.Params)
			}
			continue
		}
		if a.ID == nil {
			continue // an error about no command of ours
		}
		b.mu.Lock()
		ch := b.waiting[*a.ID]
		delete(b.waiting, *a.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- a // buffered
		}
	}
}

// fail records why the reader stopped and wakes every waiting caller.
func (b *bidi) fail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		b.err = err
	}
	for id, ch := range b.waiting {
		close(ch)
		delete(b.waiting, id)
	}
}

// call sends a command and decodes its result into result (nil: ignore).
func (b *bidi) call(ctx context.Context, method string, params, result any) error {
	if params == nil {
		params = struct{}{}
	}
	ch := make(chan bidiAnswer, 1)
	b.mu.Lock()
	if b.err != nil {
		err := b.err
		b.mu.Unlock()
		return fmt.Errorf("%s: connection lost: %w", method, err)
	}
	b.next++
	id := b.next
	b.waiting[id] = ch
	b.mu.Unlock()
	forget := func() {
		b.mu.Lock()
		delete(b.waiting, id)
		b.mu.Unlock()
	}
	msg, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err != nil {
		forget()
		return err
	}
	// The write gets its own deadline, not ctx: the websocket library
	// closes the connection when a write's context ends, and one
	// caller's deadline must not cut every later command off.
	wctx, wcancel := context.WithTimeout(context.Background(), bidiWriteTimeout)
	err = b.c.Write(wctx, websocket.MessageText, msg)
	wcancel()
	if err != nil {
		forget()
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case <-ctx.Done():
		forget()
		return fmt.Errorf("%s: %w", method, ctx.Err())
	case a, ok := <-ch:
		if !ok {
			b.mu.Lock()
			err := b.err
			b.mu.Unlock()
			return fmt.Errorf("%s: connection lost: %w", method, err)
		}
		if a.Type == "error" {
			return fmt.Errorf("%s: %s: %s", method, a.Error, a.Message)
		}
		if result != nil {
			return json.Unmarshal(a.Result, result)
		}
		return nil
	}
}

// close ends the connection and waits for the reader.
func (b *bidi) close() {
	b.cancel()
	_ = b.c.CloseNow()
	<-b.done
}

// remoteValue is BiDi's serialization of a JavaScript value
// (script.RemoteValue).
type remoteValue struct {
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
}

// errDeepValue is a value nested deeper than the serialization went.
var errDeepValue = errors.New("value nested too deep to serialize")

// toJSON turns a remote value into the JSON of the value, as
// JSON.stringify would (undefined and functions as null).
func (v remoteValue) toJSON() (any, error) {
	switch v.Type {
	case "undefined", "null", "function", "symbol":
		return nil, nil
	case "string", "boolean":
		var x any
		err := json.Unmarshal(v.Value, &x)
		return x, err
	case "number":
		var x any
		if err := json.Unmarshal(v.Value, &x); err != nil {
			return nil, err
		}
		if _, ok := x.(string); ok { // NaN, -0, Infinity, -Infinity
			return nil, nil
		}
		return x, nil
	case "bigint":
		var s string
		err := json.Unmarshal(v.Value, &s)
		return json.Number(s), err
	case "array", "set":
		return v.list()
	case "object", "map":
		return v.object()
	case "date":
		var s string
		err := json.Unmarshal(v.Value, &s)
		return s, err
	}
	return map[string]any{}, nil // nodes, errors and the like
}

func (v remoteValue) list() (any, error) {
	if v.Value == nil {
		return nil, errDeepValue
	}
	var items []remoteValue
	if err := json.Unmarshal(v.Value, &items); err != nil {
		return nil, err
	}
	out := make([]any, len(items))
	for i, it := range items {
		x, err := it.toJSON()
		if err != nil {
			return nil, err
		}
		out[i] = x
	}
	return out, nil
}

func (v remoteValue) object() (any, error) {
	if v.Value == nil {
		return nil, errDeepValue
	}
	// A list of [key, value] pairs; a key is a string or a remote value.
	var pairs [][2]json.RawMessage
	if err := json.Unmarshal(v.Value, &pairs); err != nil {
		return nil, err
	}
	out := make(map[string]any, len(pairs))
	for _, p := range pairs {
		var key string
		if err := json.Unmarshal(p[0], &key); err != nil {
			var kv remoteValue
			if err := json.Unmarshal(p[0], &kv); err != nil {
				return nil, err
			}
			k, err := kv.toJSON()
			if err != nil {
				return nil, err
			}
			key = fmt.Sprint(k)
		}
		var val remoteValue
		if err := json.Unmarshal(p[1], &val); err != nil {
			return nil, err
		}
		x, err := val.toJSON()
		if err != nil {
			return nil, err
		}
		if val.Type != "undefined" && val.Type != "function" {
			out[key] = x
		}
	}
	return out, nil
}
