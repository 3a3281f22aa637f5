package browser

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

func short(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// js quotes v as a JavaScript literal.
func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// event is what the test page records for one PolySocket event.
type event struct {
	Type string  `json:"type"` // open, message, error, close
	At   float64 `json:"at"`   // ms since the PolySocket was made
	// open
	Transport string `json:"transport"`
	Base      string `json:"base"` // the relay base URL, "" over WebSocket
	// message: kind is text, arraybuffer or blob; len counts UTF-16
	// units or bytes; sum is FNV-1a over them; data is the text when
	// short.
	Kind string  `json:"kind"`
	Len  int     `json:"len"`
	Sum  uint32  `json:"sum"`
	Data *string `json:"data"`
	// close
	Code     int    `json:"code"`
	Reason   string `json:"reason"`
	WasClean bool   `json:"wasClean"`
}

func (e event) String() string {
	switch e.Type {
	case "message":
		if e.Data != nil {
			return fmt.Sprintf("message(%s %q)", e.Kind, *e.Data)
		}
		return fmt.Sprintf("message(%s len %d)", e.Kind, e.Len)
	case "close":
		return fmt.Sprintf("close(%d %q clean=%v)", e.Code, e.Reason, e.WasClean)
	case "open":
		return "open(" + e.Transport + ")"
	}
	return e.Type
}

func eventsString(evs []event) string {
	var b strings.Builder
	for i, e := range evs {
		if i > 0 {
			b.WriteString(", ")
		}
		if i == 20 {
			fmt.Fprintf(&b, "... %d more", len(evs)-i)
			break
		}
		b.WriteString(e.String())
	}
	return b.String()
}

// events waits until socket id has recorded at least n events (all
// decoded) and returns them.
func (tb *tab) events(id, n int, d time.Duration) []event {
	tb.t.Helper()
	var evs []event
	tb.poll(fmt.Sprintf("%d events on socket %d", n, id), d, fmt.Sprintf("T.ready(%d, %d)", id, n), &evs)
	return evs
}

// snapshot returns what socket id recorded so far.
func (tb *tab) snapshot(id int) []event {
	tb.t.Helper()
	var evs []event
	tb.eval(fmt.Sprintf("T.socks[%d].events", id), &evs)
	return evs
}
