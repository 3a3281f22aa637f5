package token

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// fileFormat is the tokens file: {"tokens":[{...}, ...]}.
type fileFormat struct {
	Tokens []Token `json:"tokens"`
}

// LoadFile reads a tokens file (see the package doc for the format). It
// refuses unknown fields, trailing data, an empty list, duplicate names
// and invalid tokens; errors name the file and the token.
func LoadFile(path string) ([]Token, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	toks, err := parseFile(data)
	if err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	return toks, nil
}

// parseFile decodes and checks the contents of a tokens file.
func parseFile(data []byte) ([]Token, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f fileFormat
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("invalid JSON: data after the top-level object")
	}
	if len(f.Tokens) == 0 {
		return nil, errors.New(`no tokens (want {"tokens":[...]})`)
	}
	if _, err := NewStatic(f.Tokens...); err != nil {
		return nil, err
	}
	return f.Tokens, nil
}

// Static is a read-only, in-memory token store. It is safe for
// concurrent use.
type Static struct {
	tokens map[string]*Compiled
}

// NewStatic validates the tokens and returns a store holding copies of
// them. Duplicate names are refused.
func NewStatic(tokens ...Token) (*Static, error) {
	s := &Static{tokens: make(map[string]*Compiled, len(tokens))}
	for i, t := range tokens {
		t = cloneToken(t)
		c, err := Compile(t)
		if err != nil && t.Name == "" {
			// Without a name, the position is all that identifies it.
			return nil, fmt.Errorf("token #%d: %w", i+1, err)
		}
		if err != nil {
			return nil, err
		}
		if _, dup := s.tokens[t.Name]; dup {
			return nil, fmt.Errorf("token %q: duplicate name", t.Name)
		}
		s.tokens[t.Name] = c
	}
	return s, nil
}

// Token returns the token called name, or ErrNotFound. The returned
// token is a copy the caller may modify.
func (s *Static) Token(_ context.Context, name string) (Token, error) {
	c, ok := s.tokens[name]
	if !ok {
		return Token{}, ErrNotFound
	}
	return cloneToken(c.Token), nil
}

// Compiled returns the compiled token called name, or ErrNotFound, for
// callers that want to skip parsing the patterns again.
func (s *Static) Compiled(_ context.Context, name string) (*Compiled, error) {
	c, ok := s.tokens[name]
	if !ok {
		return nil, ErrNotFound
	}
	return c, nil
}

// cloneToken copies t's slices so the copy shares no memory with t.
func cloneToken(t Token) Token {
	t.Targets = slices.Clone(t.Targets)
	t.Origins = slices.Clone(t.Origins)
	return t
}
