// Package token describes access tokens: which targets a token may reach,
// from which origins, and how many connections it may hold at once; and
// how target and origin patterns match.
//
// # Tokens file
//
// `polysocket both --tokens FILE` reads a JSON file like this (see
// testdata/tokens.example.json at the repository root):
//
//	{
//	  "tokens": [
//	    {
//	      "name": "app-prod",
//	      "targets": ["wss://api.example.com/live/*", "wss://*.feeds.example.com"],
//	      "origins": ["https://app.example.com", "https://*.example.com"],
//	      "limit": 100
//	    },
//	    {
//	      "name": "local",
//	      "targets": ["ws://localhost:*/*"],
//	      "origins": ["*"],
//	      "limit": 0
//	    }
//	  ]
//	}
//
// Unknown fields, duplicate names and invalid tokens are refused. A name
// is 1 to 128 characters of A-Z a-z 0-9 _ . -; a token needs at least one
// target and one origin pattern; limit is the most connections held at
// once, 0 for no limit.
//
// # Targets
//
// A target sent by a client must be a ws:// or wss:// URL with a host
// (see ParseTarget). Userinfo, fragments, dot segments in the path (also
// percent-encoded, like %2e%2e), invalid ports (0, over 65535, empty,
// not a number), spaces and control characters are refused before any
// pattern is consulted.
//
// A target pattern is scheme://host[:port][/path]:
//
//	wss://api.example.com          any path on api.example.com:443
//	wss://api.example.com/live     exactly /live (not /live/ or /live/x)
//	wss://api.example.com/live/*   any path starting with /live/
//	wss://*.example.com            a.example.com, a.b.example.com, not example.com
//	ws://localhost:*               localhost on any port
//	ws://localhost:8080/*          localhost:8080 only
//	ws://*:*                       any ws:// target at all
//	ws://[::1]:9000                IPv6 literal
//
// The scheme matches exactly; the host case-insensitively; an omitted
// port means the scheme's default (ws 80, wss 443) on both sides, so
// "ws://h" matches ws://h:80/x. The path is compared after
// percent-decoding, an empty target path counts as "/", and the query is
// never matched.
//
// # Origins
//
// The origin of a request is its Origin header, else the origin of its
// Referer (see OriginOf). An origin pattern is "*" or
// scheme://host[:port]:
//
//   - any origin, also none and "null"
//     https://app.example.com    exactly that origin (https://app.example.com:443 too)
//     https://*.example.com      any subdomain of example.com over https
//     http://localhost:*         localhost on any port
//
// Hosts match case-insensitively and ports default to 80 for http and
// 443 for https. A request without an origin, or with "Origin: null"
// (sandboxed frames, file: pages), is allowed only by "*".
package token
