package relay_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/testenv"
)

// BenchmarkEcho measures the whole echo path of one session over HTTP:
// send (/s) → relay → target → relay → poll (/j), in lockstep.
func BenchmarkEcho(b *testing.B) {
	st := testenv.NewStack(b, testenv.StackOptions{})
	tg := testenv.NewTarget(b, testenv.TargetOptions{})
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	defer tr.CloseIdleConnections()
	c := &testenv.Client{Base: st.URL, HTTP: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
	s := c.Open(b, tg.URL, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	msg := strings.Repeat("m", 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if code, err := s.SendText(ctx, msg); err != nil || code != http.StatusCreated {
			b.Fatalf("send: %d %v", code, err)
		}
		for got := false; !got; {
			r, code, err := s.Poll(ctx, 5*time.Second)
			if err != nil || code != http.StatusOK {
				b.Fatalf("poll: %d %v", code, err)
			}
			for _, m := range r.Messages {
				got = got || m.Type == "text"
			}
		}
	}
}
