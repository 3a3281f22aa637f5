package token

import (
	"strings"
	"testing"
)

// okToken is a valid token tests modify.
func okToken() Token {
	return Token{
		Name:    "app.prod-1_x",
		Targets: []string{"wss://api.example.com/live/*", "wss://*.feeds.example.com"},
		Origins: []string{"https://app.example.com", "https://*.example.com"},
		Limit:   10,
	}
}

func TestValidate(t *testing.T) {
	tests := map[string]struct {
		edit   func(*Token)
		errHas string // "" means valid
	}{
		"valid":            {edit: func(*Token) {}},
		"limit zero":       {edit: func(t *Token) { t.Limit = 0 }},
		"name max":         {edit: func(t *Token) { t.Name = strings.Repeat("a", MaxNameLen) }},
		"empty name":       {edit: func(t *Token) { t.Name = "" }, errHas: "empty"},
		"long name":        {edit: func(t *Token) { t.Name = strings.Repeat("a", MaxNameLen+1) }, errHas: "longer"},
		"name slash":       {edit: func(t *Token) { t.Name = "a/b" }, errHas: "only A-Z"},
		"name space":       {edit: func(t *Token) { t.Name = "a b" }, errHas: "only A-Z"},
		"name unicode":     {edit: func(t *Token) { t.Name = "tökén" }, errHas: "only A-Z"},
		"negative limit":   {edit: func(t *Token) { t.Limit = -1 }, errHas: "limit"},
		"no targets":       {edit: func(t *Token) { t.Targets = nil }, errHas: "target"},
		"no origins":       {edit: func(t *Token) { t.Origins = []string{} }, errHas: "origin"},
		"bad target":       {edit: func(t *Token) { t.Targets = append(t.Targets, "http://x") }, errHas: `"http://x"`},
		"bad origin":       {edit: func(t *Token) { t.Origins = append(t.Origins, "null") }, errHas: "null"},
		"error names name": {edit: func(t *Token) { t.Limit = -1 }, errHas: `"app.prod-1_x"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tok := okToken()
			tc.edit(&tok)
			err := tok.Validate()
			if tc.errHas == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate succeeded, want error")
			}
			if !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("error %q does not mention %q", err, tc.errHas)
			}
		})
	}
}

func TestAllows(t *testing.T) {
	tests := map[string]struct {
		tok    Token
		target string // checked when non-empty
		origin string
		want   bool
	}{
		"target first pattern":         {tok: okToken(), target: "wss://api.example.com/live/a", want: true},
		"target second pattern":        {tok: okToken(), target: "wss://x.feeds.example.com/any", want: true},
		"target none":                  {tok: okToken(), target: "wss://api.example.com/admin", want: false},
		"origin exact":                 {tok: okToken(), origin: "https://app.example.com", want: true},
		"origin subdomain":             {tok: okToken(), origin: "https://b.example.com:443", want: true},
		"origin other":                 {tok: okToken(), origin: "https://evil.com", want: false},
		"origin absent":                {tok: okToken(), origin: "", want: false},
		"origin null":                  {tok: okToken(), origin: "null", want: false},
		"dev origin absent":            {tok: Dev(), origin: "", want: true},
		"dev origin null":              {tok: Dev(), origin: "null", want: true},
		"dev origin any":               {tok: Dev(), origin: "https://evil.com", want: true},
		"dev localhost":                {tok: Dev(), target: "ws://localhost:8080/echo", want: true},
		"dev localhost default":        {tok: Dev(), target: "ws://localhost/", want: true},
		"dev loopback":                 {tok: Dev(), target: "ws://127.0.0.1:9999/", want: true},
		"dev not wss":                  {tok: Dev(), target: "wss://localhost:8443/", want: false},
		"dev not remote":               {tok: Dev(), target: "ws://example.com/", want: false},
		"dev not subdomain trick":      {tok: Dev(), target: "ws://localhost.example.com/", want: false},
		"invalid token allows nothing": {tok: Token{Name: "x", Targets: []string{"ws://*"}, Limit: -1}, target: "ws://h/", want: false},
		"invalid token no origins":     {tok: Token{Name: "x", Targets: []string{"ws://*"}}, origin: "", want: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, cerr := Compile(tc.tok)
			if tc.target != "" {
				u, err := ParseTarget(tc.target)
				if err != nil {
					t.Fatalf("ParseTarget(%q): %v", tc.target, err)
				}
				if got := tc.tok.AllowsTarget(u); got != tc.want {
					t.Errorf("AllowsTarget(%q) = %v, want %v", tc.target, got, tc.want)
				}
				if cerr == nil && c.AllowsTarget(u) != tc.want {
					t.Errorf("Compiled.AllowsTarget(%q) = %v, want %v", tc.target, !tc.want, tc.want)
				}
				return
			}
			if got := tc.tok.AllowsOrigin(tc.origin); got != tc.want {
				t.Errorf("AllowsOrigin(%q) = %v, want %v", tc.origin, got, tc.want)
			}
			if cerr == nil && c.AllowsOrigin(tc.origin) != tc.want {
				t.Errorf("Compiled.AllowsOrigin(%q) = %v, want %v", tc.origin, !tc.want, tc.want)
			}
		})
	}
}

func TestDev(t *testing.T) {
	d := Dev()
	if err := d.Validate(); err != nil {
		t.Fatalf("Dev().Validate: %v", err)
	}
	if d.Name != "dev" || d.Limit != 0 {
		t.Errorf("Dev() = %+v", d)
	}
	// Each call returns fresh slices, so callers cannot change the next
	// Dev token.
	d.Targets[0] = "ws://evil.com"
	if Dev().Targets[0] != "ws://localhost:*" {
		t.Error("Dev() shares its slices")
	}
}
