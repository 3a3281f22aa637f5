package token

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
)

// ErrNotFound is returned by stores for an unknown token name.
var ErrNotFound = errors.New("token: not found")

// MaxNameLen is the longest token name Validate accepts.
const MaxNameLen = 128

// Token grants access to targets from origins.
type Token struct {
	// Name is the token's value as clients send it.
	Name string `json:"name"`
	// Targets are target patterns, e.g. "wss://api.example.com/live/*".
	Targets []string `json:"targets"`
	// Origins are origin patterns, e.g. "https://*.example.com" or "*".
	Origins []string `json:"origins"`
	// Limit is the most connections the token holds at once; 0 means no
	// limit.
	Limit int `json:"limit"`
}

// Dev returns the token `polysocket both` uses when given no tokens: any
// local WebSocket server, from any origin, without a limit.
func Dev() Token {
	return Token{
		Name:    "dev",
		Targets: []string{"ws://localhost:*", "ws://127.0.0.1:*"},
		Origins: []string{"*"},
		Limit:   0,
	}
}

// DevEcho returns the dev token narrowed to the echo target of
// `polysocket both` at each host:port given (ws://{hostport}/echo):
// what it may reach when `both` listens on an address that is not
// loopback, where Dev would let any page reach every local port.
func DevEcho(hostports ...string) Token {
	t := Dev()
	t.Targets = nil
	for _, hp := range hostports {
		p := "ws://" + hp + "/echo"
		if !slices.Contains(t.Targets, p) {
			t.Targets = append(t.Targets, p)
		}
	}
	return t
}

// Validate checks the name (1 to MaxNameLen characters of A-Z a-z 0-9
// _ . -), that there is at least one target and one origin pattern and
// that all parse, and that Limit is not negative. Errors name the token.
func (t Token) Validate() error {
	_, err := Compile(t)
	return err
}

// AllowsTarget reports whether a target pattern of t matches u (as
// returned by ParseTarget). An invalid token allows nothing. It parses
// the patterns on every call; use Compile on hot paths.
func (t Token) AllowsTarget(u *url.URL) bool {
	c, err := Compile(t)
	return err == nil && c.AllowsTarget(u)
}

// AllowsOrigin reports whether an origin pattern of t matches origin (as
// returned by OriginOf; "" means no origin was sent, allowed only by
// "*"). An invalid token allows nothing. It parses the patterns on every
// call; use Compile on hot paths.
func (t Token) AllowsOrigin(origin string) bool {
	c, err := Compile(t)
	return err == nil && c.AllowsOrigin(origin)
}

// Compiled is a validated token with its patterns parsed, so matching
// does not reparse them. It is immutable and safe for concurrent use.
type Compiled struct {
	// Token is the token as given to Compile. Do not modify it.
	Token   Token
	targets []TargetPattern
	origins []OriginPattern
}

// Compile validates t (see Token.Validate) and parses its patterns.
func Compile(t Token) (*Compiled, error) {
	if err := validName(t.Name); err != nil {
		return nil, err
	}
	if t.Limit < 0 {
		return nil, fmt.Errorf("token %q: limit must be 0 (no limit) or more", t.Name)
	}
	if len(t.Targets) == 0 {
		return nil, fmt.Errorf("token %q: at least one target pattern is required", t.Name)
	}
	if len(t.Origins) == 0 {
		return nil, fmt.Errorf("token %q: at least one origin pattern is required (\"*\" for any)", t.Name)
	}
	c := &Compiled{Token: t}
	for _, s := range t.Targets {
		p, err := ParseTargetPattern(s)
		if err != nil {
			return nil, fmt.Errorf("token %q: %w", t.Name, err)
		}
		c.targets = append(c.targets, p)
	}
	for _, s := range t.Origins {
		p, err := ParseOriginPattern(s)
		if err != nil {
			return nil, fmt.Errorf("token %q: %w", t.Name, err)
		}
		c.origins = append(c.origins, p)
	}
	return c, nil
}

// validName checks a token name.
func validName(name string) error {
	if name == "" {
		return errors.New("token name is empty")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("token name %.20q...: longer than %d characters", name, MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
			c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok {
			return fmt.Errorf("token name %q: only A-Z a-z 0-9 _ . - are allowed", name)
		}
	}
	return nil
}

// AllowsTarget reports whether a target pattern matches u (as returned
// by ParseTarget).
func (c *Compiled) AllowsTarget(u *url.URL) bool {
	for _, p := range c.targets {
		if p.Match(u) {
			return true
		}
	}
	return false
}

// AllowsOrigin reports whether an origin pattern matches origin (as
// returned by OriginOf; "" means none was sent and is allowed only by
// "*").
func (c *Compiled) AllowsOrigin(origin string) bool {
	for _, p := range c.origins {
		if p.Match(origin) {
			return true
		}
	}
	return false
}
