package browser

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestBiDiDeadlineKeepsConnection checks that a command whose context
// has ended does not close the connection under the next one: the soak's
// poll ended at its deadline and took the BiDi connection with it, so
// the failure read as a browser that had stopped answering.
func TestBiDiDeadlineKeepsConnection(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for { // answers every command with success
			_, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			id := strings.TrimPrefix(strings.SplitN(string(msg), ",", 2)[0], `{"id":`)
			if c.Write(r.Context(), websocket.MessageText, []byte(`{"type":"success","id":`+id+`,"result":{}}`)) != nil {
				return
			}
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := dialBiDi(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	for i := range 20 {
		ended, end := context.WithCancel(ctx)
		end()
		_ = b.call(ended, "script.evaluate", nil, nil)
		if err := b.call(ctx, "script.evaluate", nil, nil); err != nil {
			t.Fatalf("command %d after one whose context had ended: %v", i, err)
		}
	}
}
