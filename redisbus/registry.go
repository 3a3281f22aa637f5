package redisbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/redis/rueidis"
	"go.uber.org/zap"

	"github.com/polysocket/polysocket/control"
)

// tokensSetTTL is how long a relay's set of token names outlives its last
// Register or Acquire, in units of RegistrationTTL: longer than the counts
// it keeps alive, so it never vanishes while they matter.
const tokensSetTTL = 2

// Register publishes info for RegistrationTTL, resets the relay's placed
// counter (info.Sessions includes those sessions now) and keeps alive the
// connection counts the relay holds.
func (b *Bus) Register(ctx context.Context, info control.RelayInfo) error {
	if info.ID == "" {
		return errors.New("redisbus: register: empty relay ID")
	}
	data, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("redisbus: register: %w", err)
	}
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	b.mu.Lock()
	first := !b.registered[info.ID]
	b.mu.Unlock()
	if first {
		if err := b.clearCounts(ctx, info.ID); err != nil {
			return err
		}
	}
	ttl := b.cfg.RegistrationTTL
	c := b.client
	res := c.DoMulti(ctx,
		c.B().Set().Key(b.relayKey(info.ID)).Value(rueidis.BinaryString(data)).Px(ttl).Build(),
		c.B().Sadd().Key(b.relaysKey()).Member(info.ID).Build(),
		c.B().Pexpire().Key(b.relayTokensKey(info.ID)).Milliseconds(tokensSetTTL*ttl.Milliseconds()).Build(),
		c.B().Smembers().Key(b.relayTokensKey(info.ID)).Build(),
		c.B().Del().Key(b.relayPlacedKey(info.ID)).Build(),
	)
	for _, r := range append(res[:3:3], res[4]) {
		if err := r.Error(); err != nil {
			return busErr("register", err)
		}
	}
	names, err := res[3].AsStrSlice()
	if err != nil {
		return busErr("register", err)
	}
	if err := b.refreshCounts(ctx, info.ID, names, info.Tokens); err != nil {
		return err
	}
	if first {
		b.mu.Lock()
		b.registered[info.ID] = true
		b.mu.Unlock()
	}
	return nil
}

// clearCounts drops the connection counts held under relayID, before this
// process's relay of that id first registers: they belong to a former
// process whose sessions died with it. (Sessions this relay opens are
// counted only once routers see it registered.)
func (b *Bus) clearCounts(ctx context.Context, relayID string) error {
	c := b.client
	names, err := c.Do(ctx, c.B().Smembers().Key(b.relayTokensKey(relayID)).Build()).AsStrSlice()
	if err != nil {
		return busErr("register: clear old counts", err)
	}
	if len(names) == 0 {
		return nil
	}
	cmds := make(rueidis.Commands, 0, 2*len(names))
	for _, name := range names {
		cmds = append(cmds,
			c.B().Hdel().Key(b.connsKey(name)).Field(relayID).Build(),
			c.B().Hdel().Key(b.aliveKey(name)).Field(relayID).Build())
	}
	for _, r := range c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return busErr("register: clear old counts", err)
		}
	}
	b.log.Info("redisbus: cleared the connection counts of a former relay under this id",
		zap.String("relay", relayID), zap.Strings("tokens", names))
	return nil
}

// refreshCounts extends the expiry of relayID's counts of the named
// tokens, and of the tokens it reports live sessions of (own), restoring
// counts Redis lost.
func (b *Bus) refreshCounts(ctx context.Context, relayID string, names []string, own map[string]int) error {
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		seen[name] = true
	}
	var lost []string // tokens Redis no longer lists for the relay
	for name, n := range own {
		if n > 0 && !seen[name] {
			names = append(names, name)
			lost = append(lost, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	if len(lost) > 0 {
		c := b.client
		err := c.Do(ctx, c.B().Sadd().Key(b.relayTokensKey(relayID)).Member(lost...).Build()).Error()
		if err != nil {
			return busErr("register: restore token set", err)
		}
	}
	ttl := strconv.FormatInt(b.cfg.RegistrationTTL.Milliseconds(), 10)
	execs := make([]rueidis.LuaExec, len(names))
	for i, name := range names {
		execs[i] = rueidis.LuaExec{
			Keys: []string{b.connsKey(name), b.aliveKey(name)},
			Args: []string{relayID, ttl, strconv.Itoa(own[name])},
		}
	}
	var res []rueidis.RedisResult
	if len(execs) == 1 {
		// ExecMulti loads the script on every node first; one token does
		// not pay for that.
		res = []rueidis.RedisResult{refreshScript.Exec(ctx, b.client, execs[0].Keys, execs[0].Args)}
	} else {
		res = refreshScript.ExecMulti(ctx, b.client, execs...)
	}
	for _, r := range res {
		if err := r.Error(); err != nil {
			return busErr("register: refresh counts", err)
		}
	}
	return nil
}

// Unregister removes the relay from the registry at once. The counts it
// still holds expire with its last registration.
func (b *Bus) Unregister(ctx context.Context, relayID string) error {
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	c := b.client
	for _, r := range c.DoMulti(ctx,
		c.B().Del().Key(b.relayKey(relayID)).Build(),
		c.B().Srem().Key(b.relaysKey()).Member(relayID).Build(),
	) {
		if err := r.Error(); err != nil {
			return busErr("unregister", err)
		}
	}
	return nil
}

// Relays lists the live relays, ordered by ID, each with the sessions
// placed on it since it last registered added to the count it published.
// It prunes the ids of expired relays from the index as it finds them.
func (b *Bus) Relays(ctx context.Context) ([]control.RelayInfo, error) {
	ctx, cancel := b.opCtx(ctx)
	defer cancel()
	c := b.client
	ids, err := c.Do(ctx, c.B().Smembers().Key(b.relaysKey()).Build()).AsStrSlice()
	if err != nil {
		return nil, busErr("relays", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	// Two GETs per relay: its info, then its placed counter.
	gets := make(rueidis.Commands, 0, 2*len(ids))
	for _, id := range ids {
		gets = append(gets,
			c.B().Get().Key(b.relayKey(id)).Build(),
			c.B().Get().Key(b.relayPlacedKey(id)).Build())
	}
	res := c.DoMulti(ctx, gets...)
	var (
		relays []control.RelayInfo
		dead   []string
	)
	for i := range ids {
		data, err := res[2*i].AsBytes()
		if rueidis.IsRedisNil(err) {
			dead = append(dead, ids[i])
			continue
		}
		if err != nil {
			return nil, busErr("relays", err)
		}
		var info control.RelayInfo
		if err := json.Unmarshal(data, &info); err != nil {
			return nil, fmt.Errorf("redisbus: relays: relay %s: %w", ids[i], err)
		}
		placed, err := res[2*i+1].AsInt64()
		switch {
		case err == nil:
			info.Sessions += int(placed)
		case !rueidis.IsRedisNil(err):
			return nil, busErr("relays", err)
		}
		relays = append(relays, info)
	}
	if len(dead) > 0 {
		// A relay re-registering right now re-adds itself on its next
		// beat, so losing this race costs it at most one beat.
		_ = c.Do(ctx, c.B().Srem().Key(b.relaysKey()).Member(dead...).Build()).Error()
	}
	sort.Slice(relays, func(i, j int) bool { return relays[i].ID < relays[j].ID })
	return relays, nil
}
