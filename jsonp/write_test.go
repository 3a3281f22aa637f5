package jsonp

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/polysocket/polysocket/control"
)

func TestAppendString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", `""`},
		{"plain", "hello world", `"hello world"`},
		{"quote and backslash", `a"b\c`, `"a\"b\\c"`},
		{"newline tab cr", "a\nb\tc\rd", `"a\nb\tc\rd"`},
		{"control chars", "\x00\x01\x1f\x7f", `"\u0000\u0001\u001f` + "\x7f" + `"`},
		{"backspace formfeed", "\b\f", `"\u0008\u000c"`},
		{"line separators", "a\u2028b\u2029c", `"a\u2028b\u2029c"`},
		{"script end", "</script><!--", `"\u003c/script\u003e\u003c!--"`},
		{"ampersand", "a&b", `"a\u0026b"`},
		{"invalid utf-8", "a\xffb\xc3", `"a\ufffdb\ufffd"`},
		{"surrogate half", "\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`},
		{"literal replacement char kept", "\ufffd", "\"\ufffd\""},
		{"astral kept", "😀𝄞", "\"😀𝄞\""},
		{"two-byte and three-byte kept", "é€", "\"é€\""},
		{"near separators kept", "\u2027\u202a", "\"\u2027\u202a\""},
	}
	for _, tt := range tests {
		got := string(AppendString([]byte("x"), []byte(tt.in)))
		if got != "x"+tt.want {
			t.Errorf("%s: AppendString(%q) = %s, want %s", tt.name, tt.in, got[1:], tt.want)
			continue
		}
		checkJSONString(t, []byte(tt.in), []byte(got[1:]))
	}
}

// checkJSONString asserts that out, AppendString's encoding of in, is a
// valid JSON string that decodes to in (with each invalid UTF-8 byte
// replaced by U+FFFD), and that it holds nothing an old JavaScript engine
// or an HTML parser would trip over.
func checkJSONString(t *testing.T, in, out []byte) {
	t.Helper()
	if !json.Valid(out) {
		t.Fatalf("AppendString(%q) = %q: not valid JSON", in, out)
	}
	var s string
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("decoding %q: %v", out, err)
	}
	want := string([]rune(string(in))) // each invalid byte → U+FFFD
	if s != want {
		t.Fatalf("AppendString(%q) decodes to %q, want %q", in, s, want)
	}
	if utf8.Valid(in) && s != string(in) {
		t.Fatalf("valid UTF-8 %q did not round-trip: %q", in, s)
	}
	if !utf8.Valid(out) {
		t.Fatalf("AppendString(%q) = %q: not valid UTF-8", in, out)
	}
	for _, bad := range []string{"\u2028", "\u2029", "<", ">", "&"} {
		if strings.Contains(string(out), bad) {
			t.Fatalf("AppendString(%q) = %q contains raw %q", in, out, bad)
		}
	}
	for _, c := range out {
		if c < 0x20 {
			t.Fatalf("AppendString(%q) = %q contains a raw control character", in, out)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{
		"", "hello", `"\`, "\n\r\t\x00\x1f", "\u2028\u2029", "</script>",
		"\xff", "\xc3", "\xed\xa0\x80", "😀", "é€𝄞", "\ufffd", "a&b<c>d",
		string([]byte{0xf0, 0x9f, 0x98}), "\x7f\u0080\u07ff\u0800\uffff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkJSONString(t, in, AppendString(nil, in))
	})
}

func TestWrite(t *testing.T) {
	t.Parallel()
	obj := []byte(`{"ok":true,"s":"\u2028"}`)
	tests := []struct {
		name     string
		cb       string
		status   int
		wantCT   string
		wantBody string
	}{
		{"plain", "", http.StatusCreated, "application/json", string(obj)},
		{"jsonp", "a.b_$", http.StatusOK, "application/javascript; charset=utf-8", "/**/a.b_$(" + string(obj) + ");"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		Write(rec, tt.cb, tt.status, obj)
		checkHeaders(t, rec)
		if rec.Code != tt.status {
			t.Errorf("%s: status %d, want %d", tt.name, rec.Code, tt.status)
		}
		if ct := rec.Header().Get("Content-Type"); ct != tt.wantCT {
			t.Errorf("%s: Content-Type %q, want %q", tt.name, ct, tt.wantCT)
		}
		if body := rec.Body.String(); body != tt.wantBody {
			t.Errorf("%s: body %q, want %q", tt.name, body, tt.wantBody)
		}
		if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(len(tt.wantBody)) {
			t.Errorf("%s: Content-Length %s, body is %d bytes", tt.name, cl, len(tt.wantBody))
		}
	}
}

func TestWriteValueEscapesLineSeparators(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	WriteValue(rec, "cb", http.StatusOK, map[string]string{"s": "a\u2028b\u2029</script>"})
	body := rec.Body.String()
	if strings.ContainsAny(body, "\u2028\u2029<>") {
		t.Fatalf("body %q holds raw line separators or angle brackets", body)
	}
	checkHeaders(t, rec)
}

func TestWriteError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code        control.Code
		cb          string
		jsonpStatus int
		want        int
	}{
		{control.CodeParams, "", 200, http.StatusBadRequest},
		{control.CodeToken, "", 200, http.StatusForbidden},
		{control.CodeOrigin, "", 200, http.StatusForbidden},
		{control.CodeTarget, "", 200, http.StatusForbidden},
		{control.CodeSocket, "", 200, http.StatusForbidden},
		{control.CodeLimit, "", 200, http.StatusTooManyRequests},
		{control.CodeUnavailable, "", 200, http.StatusServiceUnavailable},
		{control.CodeDial, "", 200, http.StatusBadGateway},
		{control.CodeTimeout, "", 200, http.StatusGatewayTimeout},
		{control.CodeTooLarge, "", 200, http.StatusRequestEntityTooLarge},
		{control.CodeMethod, "", 200, http.StatusMethodNotAllowed},
		{control.CodeInternal, "", 200, http.StatusInternalServerError},
		{control.CodeParams, "cb", http.StatusOK, http.StatusOK},
		{control.CodeLimit, "cb", http.StatusOK, http.StatusOK},
		{control.CodeSocket, "cb", http.StatusForbidden, http.StatusForbidden},
		{control.CodeTooLarge, "f.g", http.StatusRequestEntityTooLarge, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		WriteError(rec, tt.cb, tt.jsonpStatus, tt.code, "why <it> failed\u2028")
		checkHeaders(t, rec)
		if rec.Code != tt.want {
			t.Errorf("%s cb=%q: status %d, want %d", tt.code, tt.cb, rec.Code, tt.want)
		}
		body := rec.Body.Bytes()
		if tt.cb != "" {
			pre, suf := "/**/"+tt.cb+"(", ");"
			s := string(body)
			if !strings.HasPrefix(s, pre) || !strings.HasSuffix(s, suf) {
				t.Fatalf("%s: body %q is not a JSONP call", tt.code, s)
			}
			body = []byte(s[len(pre) : len(s)-len(suf)])
		}
		var eb struct {
			OK    *bool  `json:"ok"`
			Error string `json:"error"`
			Code  string `json:"code"`
		}
		if err := json.Unmarshal(body, &eb); err != nil {
			t.Fatalf("%s: body %q: %v", tt.code, body, err)
		}
		if eb.OK == nil || *eb.OK || eb.Code != string(tt.code) || eb.Error != "why <it> failed\u2028" {
			t.Errorf("%s: body %q", tt.code, body)
		}
		if strings.ContainsAny(string(body), "\u2028") {
			t.Errorf("%s: body %q holds a raw U+2028", tt.code, body)
		}
	}
}

func TestWriteBadCallback(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	WriteBadCallback(rec)
	checkHeaders(t, rec)
	if rec.Code != http.StatusBadRequest {
		t.Errorf("status %d, want 400", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
}

func checkHeaders(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	h := rec.Header()
	for k, v := range map[string]string{
		"X-Content-Type-Options":      "nosniff",
		"Cache-Control":               "no-store",
		"Access-Control-Allow-Origin": "*",
	} {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
}
