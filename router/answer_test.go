package router_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/testenv"
)

// answer is one HTTP response, read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// std is the answer as the shared checks of testenv take it.
func (a answer) std() testenv.Answer {
	return testenv.Answer{Status: a.status, Header: a.header, Body: a.body}
}

// reply is the object of a /create answer, success or error.
type reply struct {
	OK       *bool  `json:"ok"`
	FQDN     string `json:"fqdn"`
	Socket   string `json:"socket"`
	Protocol string `json:"protocol"`
	Error    string `json:"error"`
	Code     string `json:"code"`
}

// newClient returns an HTTP client whose idle connections are closed at
// cleanup, so no transport goroutine outlives the test.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// do sends one request and reads the whole answer.
func do(t *testing.T, c *http.Client, method, u string, hdr http.Header) answer {
	t.Helper()
	a := testenv.Fetch(t, c, method, u, nil, hdr)
	return answer{status: a.Status, header: a.Header, body: a.Body}
}

// checkCommon asserts the headers every answer carries.
func checkCommon(t *testing.T, a answer) {
	t.Helper()
	testenv.CheckHeaders(t, a.std())
}

// decode checks the status and content type of a JSON (cb == "") or
// JSONP answer and decodes its object.
func decode(t *testing.T, a answer, cb string, status int) reply {
	t.Helper()
	var r reply
	testenv.DecodeAnswer(t, a.std(), cb, status, &r)
	return r
}

// checkError asserts an error answer with the error word code (never "").
func checkError(t *testing.T, a answer, cb string, status int, code string) {
	t.Helper()
	testenv.CheckAnswer(t, a.std(), cb, status, code, nil)
}

// checkBadCallback asserts the plain-text 400 of an invalid callback,
// which must not reflect it.
func checkBadCallback(t *testing.T, a answer, cb string) {
	t.Helper()
	testenv.CheckBadCallback(t, a.std(), cb)
}
