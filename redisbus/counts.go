package redisbus

import (
	"context"
	"errors"
	"strconv"

	"github.com/redis/rueidis"
	"go.uber.org/zap"
)

// The count scripts take KEYS[1] = {prefix}:{t:NAME}:conns (relay id ->
// connections) and KEYS[2] = {prefix}:{t:NAME}:alive (relay id -> expiry in
// unix ms). Time comes from the Redis server, so the clocks of routers and
// relays do not matter.

// pruneLua drops the counts of relays whose expiry has passed and returns
// the sum of the rest.
const pruneLua = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = {}
local a = redis.call('HGETALL', KEYS[2])
for i = 1, #a, 2 do
  if tonumber(a[i + 1]) > now then
    live[a[i]] = true
  else
    redis.call('HDEL', KEYS[2], a[i])
  end
end
local sum = 0
local c = redis.call('HGETALL', KEYS[1])
for i = 1, #c, 2 do
  if live[c[i]] then
    sum = sum + tonumber(c[i + 1])
  else
    redis.call('HDEL', KEYS[1], c[i])
  end
end
`

// acquireScript: ARGV[1] relay id, ARGV[2] limit (0: none), ARGV[3] TTL ms.
// Returns 1 when counted, 0 at the limit.
var acquireScript = rueidis.NewLuaScript(pruneLua + `
local limit = tonumber(ARGV[2])
if limit > 0 and sum >= limit then
  return 0
end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if not redis.call('HGET', KEYS[2], ARGV[1]) then
  redis.call('HSET', KEYS[2], ARGV[1], now + tonumber(ARGV[3]))
end
return 1
`)

// countScript returns the live count.
var countScript = rueidis.NewLuaScript(pruneLua + `
return sum
`)

// releaseScript: ARGV[1] relay id. Decrements, never below zero; returns
// the relay's new count.
var releaseScript = rueidis.NewLuaScript(`
local n = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if n <= 1 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 0
end
return redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
`)

// refreshScript: ARGV[1] relay id, ARGV[2] TTL ms, ARGV[3] the relay's own
// count of its live sessions of the token. Extends the relay's expiry
// while it holds connections of the token, and forgets it when it holds
// none (the next Acquire sets a fresh one).
//
// Redis's count is normally at least the relay's own (it is taken before
// a session opens and given back after it ends), so a smaller one means
// Redis lost counts — an outage outlasted them, or its data went — and
// the relay's own count is written back: limits hold again after an
// outage.
var refreshScript = rueidis.NewLuaScript(`
local n = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local own = tonumber(ARGV[3])
if own > n then
  redis.call('HSET', KEYS[1], ARGV[1], own)
  n = own
end
if n > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('HSET', KEYS[2], ARGV[1], now + tonumber(ARGV[2]))
  return 1
end
redis.call('HDEL', KEYS[2], ARGV[1])
return 0
`)

// Acquire counts one connection of tokenName on relayID if the token's
// count over all live relays is below limit (0: no limit, still counted).
// It is atomic across every Bus sharing the Redis. The relay's count
// lives as long as the relay keeps registering.
//
// An empty relayID counts a connection held by no relay, as the router
// does to learn whether a token is at its limit (it releases it at once);
// nothing keeps it alive, so it expires after RegistrationTTL even if the
// Release is lost.
func (b *Bus) Acquire(ctx context.Context, tokenName, relayID string, limit int) (bool, error) {
	if tokenName == "" {
		return false, errors.New("redisbus: acquire: empty token name")
	}
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	c := b.client
	ttl := b.cfg.RegistrationTTL.Milliseconds()
	if relayID != "" {
		// Remember the token for the relay's Register before counting,
		// so a count never exists that Register does not keep alive.
		for _, r := range c.DoMulti(ctx,
			c.B().Sadd().Key(b.relayTokensKey(relayID)).Member(tokenName).Build(),
			c.B().Pexpire().Key(b.relayTokensKey(relayID)).Milliseconds(tokensSetTTL*ttl).Build(),
		) {
			if err := r.Error(); err != nil {
				return false, busErr("acquire", err)
			}
		}
	}
	n, err := acquireScript.Exec(ctx, c,
		[]string{b.connsKey(tokenName), b.aliveKey(tokenName)},
		[]string{relayID, strconv.Itoa(limit), strconv.FormatInt(ttl, 10)},
	).AsInt64()
	if err != nil {
		return false, busErr("acquire", err)
	}
	if n != 1 {
		return false, nil
	}
	if relayID != "" {
		b.notePlaced(ctx, relayID)
	}
	return true, nil
}

// notePlaced counts a session placed on relayID until the relay's next
// Register, so Relays shows the load at once (see the package doc). It is
// only a hint for picking relays: a failure is logged, not returned,
// since the connection is counted already.
func (b *Bus) notePlaced(ctx context.Context, relayID string) {
	c := b.client
	for _, r := range c.DoMulti(ctx,
		c.B().Incr().Key(b.relayPlacedKey(relayID)).Build(),
		c.B().Pexpire().Key(b.relayPlacedKey(relayID)).Milliseconds(b.cfg.RegistrationTTL.Milliseconds()).Build(),
	) {
		if err := r.Error(); err != nil {
			b.log.Debug("redisbus: counting a placed session", zap.String("relay", relayID), zap.Error(err))
			return
		}
	}
}

// Release undoes one Acquire of tokenName on relayID. Releasing a count
// that expired already is not an error.
func (b *Bus) Release(ctx context.Context, tokenName, relayID string) error {
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	err := releaseScript.Exec(ctx, b.client,
		[]string{b.connsKey(tokenName)}, []string{relayID}).Error()
	if err != nil {
		return busErr("release", err)
	}
	return nil
}

// Count returns how many connections tokenName holds over all live
// relays.
func (b *Bus) Count(ctx context.Context, tokenName string) (int, error) {
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	n, err := countScript.Exec(ctx, b.client,
		[]string{b.connsKey(tokenName), b.aliveKey(tokenName)}, nil).AsInt64()
	if err != nil {
		return 0, busErr("count", err)
	}
	return int(n), nil
}
