// Package redisbus is the Redis implementation of the control-plane bus
// between routers and relays. It serves router.Bus, router.TokenStore and
// relay.Bus over one rueidis client, against a single Redis server or a
// Redis Cluster.
//
// # Keys
//
// Every key starts with Config.Prefix (default "polysocket"):
//
//	{prefix}:relays                set of relay ids (an index; pruned lazily)
//	{prefix}:relay:{id}            RelayInfo JSON, expires after RegistrationTTL
//	{prefix}:relay:{id}:tokens     set of token names the relay holds counts for
//	{prefix}:relay:{id}:placed     sessions counted on the relay since its last Register
//	{prefix}:tokens                hash: token name -> token.Token JSON
//	{prefix}:{t:NAME}:conns        hash: relay id -> connections of token NAME
//	{prefix}:{t:NAME}:alive        hash: relay id -> expiry (unix ms, Redis clock)
//
// The hash tag {t:NAME} puts the two count hashes of a token in one Cluster
// slot, so the Lua scripts that count connections touch one slot only.
//
// # Load
//
// A relay publishes its session count about once a second, and routers
// place sessions far faster than that: on the published count alone every
// router would send a whole second's worth of sessions to the one relay
// that looked emptiest. So Acquire also counts the session in the relay's
// placed counter, Register resets it along with the published count, and
// Relays reports the sum, which every router sees at once.
//
// # Establish
//
// A relay's Serve subscribes to {prefix}:establish:{relay id}. A router
// publishes the request there, naming its own reply channel
// {prefix}:reply:{bus id}, and waits for the reply, matched by an id
// unique to the call.
// PUBLISH reaching nobody means the relay is gone. On a Redis Cluster the
// sharded variants (SPUBLISH, SSUBSCRIBE) are used, because only they
// report receivers across the whole cluster.
//
// # Connection counts
//
// Counts are kept per token per relay, and each relay's counts carry an
// expiry that Register refreshes. A relay that dies stops refreshing, and
// the next Acquire or Count drops its counts: they return within
// RegistrationTTL. A relay that dies and starts again under the same id
// (a fixed --id) would refresh its predecessor's counts, so the first
// Register of an id on a Bus clears the counts held under it first.
package redisbus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/zap"

	"github.com/polysocket/polysocket/control"
)

// Config configures a Bus. The zero value of every field but URL means the
// default noted on it.
type Config struct {
	// URL locates Redis: redis://[user:password@]host:port[/db] or
	// rediss:// for TLS. user:password authenticates with ACL (AUTH user
	// password); a password alone (redis://:secret@host) uses the default
	// user. A Redis Cluster is given by several seed nodes, either in the
	// host list, redis://host1:6379,host2:6379,host3:6379, or as addr
	// query parameters, redis://host1:6379?addr=host2:6379&addr=host3:6379;
	// a single seed works too, since the client asks the server whether it
	// is a cluster.
	// Other query parameters rueidis.ParseURL knows (dial_timeout,
	// write_timeout, skip_verify, ...) are honoured. Empty means
	// redis://127.0.0.1:6379.
	URL string
	// Prefix starts every key and channel name, so several deployments can
	// share one Redis. It must not contain '{' or '}' (they would break the
	// Cluster hash tags). Empty means "polysocket".
	Prefix string
	// RegistrationTTL is how long a relay's registration, and the
	// connection counts it holds, outlive its last Register. Relays
	// register about every second, so it must cover a few missed beats.
	// Zero means 3s.
	RegistrationTTL time.Duration
	// EstablishTimeout bounds Establish when its context has no deadline.
	// Zero means 5s.
	EstablishTimeout time.Duration
	// OpTimeout bounds every single Redis command, so an unreachable Redis
	// turns into control.ErrBusDown quickly instead of a hang. Zero means
	// 1s.
	OpTimeout time.Duration
	// DialTimeout bounds connecting to Redis. Zero means 1s, unless the
	// URL sets dial_timeout.
	DialTimeout time.Duration
	// QueueSize is how many establish requests a relay's Serve holds
	// between the Redis read loop and their handlers; requests beyond it
	// are dropped (the router times out and tries another relay). Zero
	// means 1024.
	QueueSize int
}

// Default values of Config fields.
const (
	DefaultURL              = "redis://127.0.0.1:6379"
	DefaultPrefix           = "polysocket"
	DefaultRegistrationTTL  = 3 * time.Second
	DefaultEstablishTimeout = 5 * time.Second
	DefaultOpTimeout        = time.Second
	DefaultDialTimeout      = time.Second
	DefaultQueueSize        = 1024
)

// withDefaults fills in defaults and validates; it is the one place that
// knows the defaults.
func (c Config) withDefaults() (Config, error) {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(c.Prefix, "{}") {
		return c, fmt.Errorf("redisbus: prefix %q must not contain '{' or '}'", c.Prefix)
	}
	if c.RegistrationTTL == 0 {
		c.RegistrationTTL = DefaultRegistrationTTL
	}
	if c.EstablishTimeout == 0 {
		c.EstablishTimeout = DefaultEstablishTimeout
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = DefaultOpTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.RegistrationTTL < time.Millisecond || c.EstablishTimeout < 0 || c.OpTimeout < 0 || c.DialTimeout < 0 || c.QueueSize < 0 {
		return c, errors.New("redisbus: negative or too small duration or queue size in config")
	}
	return c, nil
}

// Bus is the Redis control-plane bus. All methods may be called
// concurrently. Close it after every Serve call has returned.
type Bus struct {
	cfg     Config
	log     *zap.Logger
	client  rueidis.Client
	sharded bool // Redis Cluster: use SPUBLISH/SSUBSCRIBE
	id      string

	// ctx is cancelled by Close; it ends the reply loop, which wg tracks.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards the fields below. The rueidis read loop takes it only
	// briefly and never blocks under it.
	mu             sync.Mutex
	closed         bool
	repliesStarted bool
	repliesReady   chan struct{} // closed while the reply channel is subscribed
	repliesOn      bool          // repliesReady is closed
	waiters        map[string]chan control.EstablishReply
	// registered holds the relay ids this Bus has registered: the first
	// Register of an id clears counts a former process under that id
	// left behind.
	registered map[string]bool

	closeOnce sync.Once
}

// New connects to Redis and returns a Bus. It fails when Redis cannot be
// reached or the config is invalid.
func New(cfg Config, log *zap.Logger) (*Bus, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	opt, err := parseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("redisbus: parse URL: %w", err)
	}
	if opt.Dialer.Timeout == 0 {
		opt.Dialer.Timeout = cfg.DialTimeout
	}
	if opt.ConnWriteTimeout == 0 {
		// Also the interval of rueidis' background PINGs: a Redis that
		// stops answering is noticed within about this long.
		opt.ConnWriteTimeout = cfg.OpTimeout
	}
	// Commands are bounded by OpTimeout and the bus' callers retry on
	// their own terms (another relay, the next Register), so rueidis'
	// own retries would only stretch an outage into a hang.
	opt.DisableRetry = true
	opt.DisableCache = true
	client, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("redisbus: connect: %w: %w", control.ErrBusDown, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Bus{
		cfg:          cfg,
		log:          log,
		client:       client,
		sharded:      client.Mode() == rueidis.ClientModeCluster,
		id:           randomID(),
		ctx:          ctx,
		cancel:       cancel,
		repliesReady: make(chan struct{}),
		waiters:      make(map[string]chan control.EstablishReply),
		registered:   make(map[string]bool),
	}
	return b, nil
}

// Close stops the reply subscription and closes the Redis client. Pending
// Establish calls return control.ErrBusTimeout or control.ErrBusDown.
// Close is idempotent.
func (b *Bus) Close() {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		b.cancel()
		b.wg.Wait()
		b.client.Close()
	})
}

// parseURL is rueidis.ParseURL, which takes further nodes as addr
// parameters, that also accepts them in the host list:
// redis://user:pw@host1:6379,host2:6379/0?x=y.
func parseURL(raw string) (rueidis.ClientOption, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return rueidis.ParseURL(raw)
	}
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	userinfo := ""
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo, authority = authority[:at+1], authority[at+1:]
	}
	hosts := strings.Split(authority, ",")
	if len(hosts) == 1 {
		return rueidis.ParseURL(raw)
	}
	path, query, _ := strings.Cut(tail, "?")
	q := "addr=" + strings.Join(hosts[1:], "&addr=")
	if query != "" {
		q = query + "&" + q
	}
	return rueidis.ParseURL(scheme + "://" + userinfo + hosts[0] + path + "?" + q)
}

// opCtx bounds one Redis command.
func (b *Bus) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.cfg.OpTimeout)
}

// Key names; see the package doc.

func (b *Bus) relaysKey() string                 { return b.cfg.Prefix + ":relays" }
func (b *Bus) relayKey(id string) string         { return b.cfg.Prefix + ":relay:" + id }
func (b *Bus) relayTokensKey(id string) string   { return b.cfg.Prefix + ":relay:" + id + ":tokens" }
func (b *Bus) relayPlacedKey(id string) string   { return b.cfg.Prefix + ":relay:" + id + ":placed" }
func (b *Bus) tokensKey() string                 { return b.cfg.Prefix + ":tokens" }
func (b *Bus) connsKey(name string) string       { return b.cfg.Prefix + ":{t:" + name + "}:conns" }
func (b *Bus) aliveKey(name string) string       { return b.cfg.Prefix + ":{t:" + name + "}:alive" }
func (b *Bus) establishChannel(id string) string { return b.cfg.Prefix + ":establish:" + id }
func (b *Bus) replyChannel() string              { return b.cfg.Prefix + ":reply:" + b.id }

// busErr wraps a failed Redis call once. An error reply from Redis is
// passed on as it is; anything else (refused, timed out, closed) means the
// bus is down.
func busErr(op string, err error) error {
	if rerr, ok := rueidis.IsRedisErr(err); ok {
		return fmt.Errorf("redisbus: %s: %w", op, rerr)
	}
	return fmt.Errorf("redisbus: %s: %w: %w", op, control.ErrBusDown, err)
}

// randomID returns 128 random bits in hex.
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
