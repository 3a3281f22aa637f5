package bench

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestDecodePollFast checks the fast poll decoder against encoding/json,
// and that it declines what it does not handle.
func TestDecodePollFast(t *testing.T) {
	for _, c := range []struct {
		body string
		fast bool
	}{
		{`{"ok":true,"messages":[]}`, true},
		{`{"ok":true,"messages":[{"type":"heartbeat"}]}`, true},
		{`{"ok":true,"messages":[{"type":"text","data":"1 23 xx","seq":7},{"type":"text","data":"","seq":8}]}`, true},
		{`{"ok":true,"messages":[{"type":"close","code":1000,"reason":"bye","seq":9}]}`, true},
		{`{"ok":true,"messages":[{"type":"binary","data":"AAE=","seq":3}]}`, true},
		{`{"ok":true,"messages":[{"type":"text","data":"a\u003cb","seq":1}]}`, false},
		{`{"ok":true,"messages":[{"type":"text","data":"x","seq":1,"extra":true}]}`, false},
		{`{"ok":true,"messages":[{"type":"text","data":"x","seq":1}`, false},
		{`{"ok":true,"messages":[{"type":"text","data":"x","seq":-1}]}`, false},
		{`{"messages":[],"ok":true}`, false},
	} {
		var fast, slow pollReply
		fast.Messages = []pollMsg{{Type: "stale", Seq: 99}}
		got := decodePollFast([]byte(c.body), &fast)
		if got != c.fast {
			t.Errorf("%s: fast decoder took it: %v, want %v", c.body, got, c.fast)
			continue
		}
		if !got || json.Unmarshal([]byte(c.body), &slow) != nil {
			continue
		}
		if len(slow.Messages) == 0 {
			slow.Messages = fast.Messages[:0]
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Errorf("%s: fast %+v, encoding/json %+v", c.body, fast, slow)
		}
	}
}
