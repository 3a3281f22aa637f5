package relay

import (
	"github.com/polysocket/polysocket/control"
	"github.com/polysocket/polysocket/jsonp"
	"github.com/polysocket/polysocket/session"
)

// ParseSend exposes parseSend to the fuzz tests of package relay_test.
func (r *Relay) ParseSend(p jsonp.Params) (session.SendRequest, control.Code, string) {
	return r.parseSend(p, nil)
}

// IsSessionHost exposes the Host check of session requests.
func (r *Relay) IsSessionHost(uniq, host string) bool { return r.isSessionHost(uniq, host) }

// DialSentences are the fixed sentences a failed dial is answered with.
var DialSentences = []string{
	msgDialBlocked, msgDialTimeout, msgDialConnect, msgDialTLS,
	msgDialHandshake, msgDialRedirect, msgDialSubprotocol,
}
