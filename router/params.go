package router

import (
	"net/url"
	"strings"

	"github.com/polysocket/polysocket/control"
	"github.com/polysocket/polysocket/jsonp"
	"github.com/polysocket/polysocket/token"
)

// createParams are /create's parameters, checked.
type createParams struct {
	from      string
	target    *url.URL
	token     string
	protocols []string
	why       string
}

const maxProtocols = 32

// knownWhy reports whether why is one of the client's reasons for the
// fallback. Only these become a metric label, so a client cannot grow
// the label set.
func knownWhy(why string) bool {
	switch why {
	case "none", "failed", "timeout", "remembered", "forced":
		return true
	}
	return false
}

// parseCreate checks /create's parameters. Every error is CodeParams.
func parseCreate(p jsonp.Params) (createParams, error) {
	var q createParams
	if why, ok := p["why"]; ok {
		if !knownWhy(why) {
			return q, refuse(control.CodeParams, "why must be none, failed, timeout, remembered or forced")
		}
		q.why = why
	}
	q.from = p["from"]
	if q.from == "" {
		return q, refuse(control.CodeParams, "from is required (the caller, e.g. polysocketjs-1.0.0)")
	}
	if len(q.from) > 128 || !printable(q.from) {
		return q, refuse(control.CodeParams, "from must be at most 128 printable ASCII characters")
	}
	raw, ok := p["target"]
	if !ok || raw == "" {
		return q, refuse(control.CodeParams, "target is required (a ws:// or wss:// URL)")
	}
	t, err := token.ParseTarget(raw)
	if err != nil {
		return q, refuse(control.CodeParams, "target: "+err.Error())
	}
	q.target = t
	q.token = p["token"]
	if q.token == "" {
		return q, refuse(control.CodeParams, "token is required")
	}
	if len(q.token) > 256 || !printable(q.token) {
		return q, refuse(control.CodeParams, "token must be at most 256 printable ASCII characters")
	}
	if list, ok := p["protocols"]; ok && list != "" {
		seen := make(map[string]bool)
		for _, proto := range strings.Split(list, ",") {
			proto = strings.TrimSpace(proto)
			if !isToken(proto) {
				return q, refuse(control.CodeParams, "protocols must be a comma-separated list of subprotocol names (RFC 7230 tokens)")
			}
			if seen[proto] {
				return q, refuse(control.CodeParams, "protocols lists "+proto+" twice")
			}
			seen[proto] = true
			q.protocols = append(q.protocols, proto)
		}
		if len(q.protocols) > maxProtocols {
			return q, refuse(control.CodeParams, "protocols lists too many subprotocols")
		}
	}
	return q, nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
