package soak

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/polysocket/polysocket/internal/soaktarget"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// message is one message of a poll answer.
type message struct {
	Type   string `json:"type"`
	Data   string `json:"data"`
	Seq    int64  `json:"seq"`
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

// pollLoop polls until the session's close message arrives (then acks
// it), or the session is lost: the relay forgot it (403) or stayed
// unreachable for giveUp, which the page sees as close 1006.
func (c *client) pollLoop(ctx context.Context) {
	for c.closeCode == 0 {
		var msgs []message
		err := c.retry(ctx, &c.st.pollRetries, "poll", func() (bool, error) {
			var err error
			msgs, err = c.poll(ctx, pollTTL)
			return !errors.Is(err, errRetry), err
		})
		if err != nil {
			c.lost(err.Error())
			return
		}
		c.receive(msgs)
		if c.closeCode == 0 && c.mode == soaktarget.ModeClient && c.echoes == c.msgs && c.pushes == c.msgs && !c.closeSent {
			c.closeSent = true
			c.sendClose(ctx)
		}
	}
	// Ack the close, so the relay may forget the session now.
	_ = c.retry(ctx, &c.st.pollRetries, "ack the close", func() (bool, error) {
		_, err := c.poll(ctx, 0)
		return !errors.Is(err, errRetry), nil
	})
}

// errRetry marks a failure worth a retry.
var errRetry = errors.New("retry")

// poll asks /j once with the current ack.
func (c *client) poll(ctx context.Context, ttl time.Duration) ([]message, error) {
	q := url.Values{"a": {strconv.FormatInt(c.ack, 10)}, "ttl": {strconv.FormatInt(ttl.Milliseconds(), 10)}}
	st, body, err := c.do(ctx, http.MethodGet, "/j/"+c.socket, q)
	switch {
	case err != nil || st >= 500:
		return nil, fmt.Errorf("%w: status %d: %v", errRetry, st, err)
	case st == http.StatusForbidden:
		return nil, errGone
	case st != http.StatusOK:
		c.st.violation("session %d: poll a=%d answered %d %s", c.id, c.ack, st, body)
		return nil, errGone
	}
	var r struct {
		OK       bool      `json:"ok"`
		Messages []message `json:"messages"`
	}
	if err := json.Unmarshal(body, &r); err != nil || !r.OK {
		c.st.violation("session %d: poll answer %.80q: %v", c.id, body, err)
		return nil, errGone
	}
	return r.Messages, nil
}

// lost ends the session without a close message, as the page's 1006.
func (c *client) lost(reason string) {
	c.closeCode, c.closeReason, c.closedAt, c.lostHere = 1006, reason, time.Now(), true
}

// receive checks one poll answer's messages: seq follows the ack
// without a gap, and each data message is the next of its stream (the
// echoes of our messages, the target's pushes).
func (c *client) receive(msgs []message) {
	for _, m := range msgs {
		if m.Type == "heartbeat" {
			continue
		}
		if m.Seq != c.ack+1 {
			c.st.violation("session %d: seq %d after ack %d", c.id, m.Seq, c.ack)
			if m.Seq <= c.ack {
				continue
			}
		}
		c.ack = m.Seq
		switch m.Type {
		case "close":
			c.closeCode, c.closeReason, c.closedAt = m.Code, m.Reason, time.Now()
			return
		case "text", "binary":
			c.data(m)
		default:
			c.st.violation("session %d: message type %q", c.id, m.Type)
		}
	}
}

// data checks one data message against the stream it belongs to.
func (c *client) data(m message) {
	text := m.Data
	if m.Type == "binary" {
		b, err := base64.StdEncoding.DecodeString(m.Data)
		if err != nil {
			c.st.violation("session %d: binary seq %d: %v", c.id, m.Seq, err)
			return
		}
		text = string(b)
	}
	switch {
	case strings.HasPrefix(text, "c"):
		n := c.echoes + 1
		if text != soaktarget.ClientMsg(c.id, n) || (m.Type == "binary") != soaktarget.Binary(n) {
			c.st.violation("session %d: echo %s %.40q, want message %d", c.id, m.Type, text, n)
			return
		}
		c.echoes = n
	case strings.HasPrefix(text, "p"):
		n := c.pushes + 1
		if text != soaktarget.PushMsg(c.id, n) || m.Type != "text" {
			c.st.violation("session %d: push %s %.40q, want push %d", c.id, m.Type, text, n)
			return
		}
		c.pushes = n
	default:
		c.st.violation("session %d: unknown message %.40q", c.id, text)
	}
}

// sendClose closes the session with soaktarget.CloseByClient. A 403 after a
// failed try means an earlier try closed it (its answer was lost).
func (c *client) sendClose(ctx context.Context) {
	q := url.Values{"code": {strconv.Itoa(soaktarget.CloseByClient)}, "reason": {"soak"}}
	tried := false
	err := c.retry(ctx, &c.st.closeRetries, "close", func() (bool, error) {
		st, body, err := c.do(ctx, http.MethodGet, "/c/"+c.socket, q)
		switch {
		case err != nil || st >= 500:
			tried = true
			return false, fmt.Errorf("status %d: %v", st, err)
		case st == http.StatusOK || (st == http.StatusForbidden && tried):
			return true, nil
		default:
			c.st.violation("session %d: close answered %d %s", c.id, st, body)
			return true, nil
		}
	})
	if err != nil {
		c.st.violation("session %d: close: %v", c.id, err)
	}
}
