package token

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadFile(t *testing.T) {
	const good = `{"tokens":[
		{"name":"a","targets":["ws://localhost:*"],"origins":["*"],"limit":10},
		{"name":"b","targets":["wss://*.example.com/live/*"],"origins":["https://app.example.com"]}
	]}`
	tests := map[string]struct {
		content string
		want    []string // token names; nil means an error is expected
		errHas  string
	}{
		"good":           {content: good, want: []string{"a", "b"}},
		"unknown field":  {content: `{"tokens":[{"name":"a","targets":["ws://h"],"origins":["*"],"limits":1}]}`, errHas: "limits"},
		"unknown top":    {content: `{"tokens":[],"extra":1}`, errHas: "extra"},
		"duplicate name": {content: `{"tokens":[{"name":"a","targets":["ws://h"],"origins":["*"]},{"name":"a","targets":["ws://h"],"origins":["*"]}]}`, errHas: `"a": duplicate`},
		"invalid token":  {content: `{"tokens":[{"name":"ok","targets":["ws://h"],"origins":["*"]},{"name":"bad","targets":["http://h"],"origins":["*"]}]}`, errHas: `token "bad"`},
		"negative limit": {content: `{"tokens":[{"name":"neg","targets":["ws://h"],"origins":["*"],"limit":-1}]}`, errHas: `"neg"`},
		"no tokens":      {content: `{"tokens":[]}`, errHas: "no tokens"},
		"empty object":   {content: `{}`, errHas: "no tokens"},
		"not json":       {content: `tokens: []`, errHas: "invalid JSON"},
		"trailing data":  {content: good + `{}`, errHas: "after"},
		"wrong type":     {content: `{"tokens":[{"name":"a","limit":"10"}]}`, errHas: "invalid JSON"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tokens.json")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			toks, err := LoadFile(path)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("LoadFile succeeded with %d tokens, want error", len(toks))
				}
				if !strings.Contains(err.Error(), tc.errHas) {
					t.Errorf("error %q does not mention %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadFile: %v", err)
			}
			var names []string
			for _, tok := range toks {
				names = append(names, tok.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.want, ",") {
				t.Errorf("names = %v, want %v", names, tc.want)
			}
		})
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := LoadFile(filepath.Join(t.TempDir(), "nope.json"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want os.ErrNotExist", err)
	}
}

// The example shipped in the repository must stay valid.
func TestLoadFileExample(t *testing.T) {
	toks, err := LoadFile(filepath.Join("..", "testdata", "tokens.example.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) == 0 {
		t.Fatal("example has no tokens")
	}
}

func TestStatic(t *testing.T) {
	s, err := NewStatic(Dev(), okToken())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := map[string]struct {
		name    string
		wantErr error
	}{
		"dev":     {name: "dev"},
		"other":   {name: okToken().Name},
		"unknown": {name: "nope", wantErr: ErrNotFound},
		"empty":   {name: "", wantErr: ErrNotFound},
		"case":    {name: "DEV", wantErr: ErrNotFound},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tok, err := s.Token(ctx, tc.name)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Token(%q) err = %v, want %v", tc.name, err, tc.wantErr)
			}
			if err == nil && tok.Name != tc.name {
				t.Errorf("Token(%q).Name = %q", tc.name, tok.Name)
			}
			c, err := s.Compiled(ctx, tc.name)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Compiled(%q) err = %v, want %v", tc.name, err, tc.wantErr)
			}
			if err == nil && c.Token.Name != tc.name {
				t.Errorf("Compiled(%q).Token.Name = %q", tc.name, c.Token.Name)
			}
		})
	}
}

func TestStaticCopies(t *testing.T) {
	in := Dev()
	s, err := NewStatic(in)
	if err != nil {
		t.Fatal(err)
	}
	in.Targets[0] = "ws://evil.com"
	got, err := s.Token(context.Background(), "dev")
	if err != nil {
		t.Fatal(err)
	}
	got.Origins[0] = "https://evil.com"
	again, err := s.Token(context.Background(), "dev")
	if err != nil {
		t.Fatal(err)
	}
	if again.Targets[0] != "ws://localhost:*" || again.Origins[0] != "*" {
		t.Errorf("store changed through a caller's slice: %+v", again)
	}
}

func TestNewStaticErrors(t *testing.T) {
	tests := map[string]struct {
		tokens []Token
		errHas string
	}{
		"duplicate": {tokens: []Token{Dev(), Dev()}, errHas: `"dev": duplicate`},
		"invalid":   {tokens: []Token{{Name: "x"}}, errHas: `"x"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := NewStatic(tc.tokens...)
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.errHas)
			}
		})
	}
}

// Static is read-only after construction; the race detector checks that
// concurrent lookups are safe.
func TestStaticConcurrent(t *testing.T) {
	s, err := NewStatic(Dev())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if _, err := s.Token(context.Background(), "dev"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
