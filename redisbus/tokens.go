package redisbus

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/redis/rueidis"

	"github.com/polysocket/polysocket/token"
)

// Token returns the token called name, or an error wrapping
// token.ErrNotFound. Routers call it on every create, so it is one HGET.
func (b *Bus) Token(ctx context.Context, name string) (token.Token, error) {
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	data, err := b.client.Do(ctx, b.client.B().Hget().Key(b.tokensKey()).Field(name).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return token.Token{}, fmt.Errorf("redisbus: token %q: %w", name, token.ErrNotFound)
	}
	if err != nil {
		return token.Token{}, busErr("token", err)
	}
	var t token.Token
	if err := json.Unmarshal(data, &t); err != nil {
		return token.Token{}, fmt.Errorf("redisbus: token %q: %w", name, err)
	}
	return t, nil
}

// PutToken validates t and stores it, replacing a token of the same name.
// Connection counts the token holds are kept.
func (b *Bus) PutToken(ctx context.Context, t token.Token) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("redisbus: put token: %w", err)
	}
	data, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("redisbus: put token: %w", err)
	}
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	err = b.client.Do(ctx, b.client.B().Hset().Key(b.tokensKey()).FieldValue().
		FieldValue(t.Name, rueidis.BinaryString(data)).Build()).Error()
	if err != nil {
		return busErr("put token", err)
	}
	return nil
}

// ListTokens returns every stored token, ordered by name.
func (b *Bus) ListTokens(ctx context.Context) ([]token.Token, error) {
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	m, err := b.client.Do(ctx, b.client.B().Hgetall().Key(b.tokensKey()).Build()).AsStrMap()
	if err != nil {
		return nil, busErr("list tokens", err)
	}
	tokens := make([]token.Token, 0, len(m))
	for name, data := range m {
		var t token.Token
		if err := json.Unmarshal([]byte(data), &t); err != nil {
			return nil, fmt.Errorf("redisbus: list tokens: token %q: %w", name, err)
		}
		tokens = append(tokens, t)
	}
	sort.Slice(tokens, func(i, j int) bool { return tokens[i].Name < tokens[j].Name })
	return tokens, nil
}

// DeleteToken removes the token called name, or returns an error wrapping
// token.ErrNotFound. Sessions it opened keep running; their counts go when
// they end.
func (b *Bus) DeleteToken(ctx context.Context, name string) error {
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	n, err := b.client.Do(ctx, b.client.B().Hdel().Key(b.tokensKey()).Field(name).Build()).AsInt64()
	if err != nil {
		return busErr("delete token", err)
	}
	if n == 0 {
		return fmt.Errorf("redisbus: delete token %q: %w", name, token.ErrNotFound)
	}
	return nil
}
