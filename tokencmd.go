package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/polysocket/polysocket/redisbus"
	"github.com/polysocket/polysocket/token"
)

// tokenCommand administers the tokens routers read from Redis:
// polysocket token add|list|show|remove.
func tokenCommand() *cli.Command {
	redis := &cli.StringFlag{
		Name:    "redis",
		Value:   redisbus.DefaultURL,
		Usage:   "Redis URL: redis://[user:password@]host:port[/db], rediss:// for TLS; a Cluster as redis://host1:port,host2:port or redis://host1:port?addr=host2:port",
		EnvVars: env("REDIS"),
	}
	jsonOut := &cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table, for scripts"}
	return &cli.Command{
		Name:  "token",
		Usage: "manage the access tokens stored in Redis",
		Description: "Tokens say which targets a client may reach, from which origins, and how many " +
			"connections it may hold at once. Flags may come before or after NAME.",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "store a token",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "target", Usage: "target pattern, e.g. wss://api.example.com/live/* (repeatable, at least one)"},
					&cli.StringSliceFlag{Name: "origin", Usage: "origin pattern, e.g. https://*.example.com, or * for any (repeatable, at least one)"},
					&cli.IntFlag{Name: "limit", Usage: "most connections held at once; 0 for no limit"},
					&cli.BoolFlag{Name: "replace", Usage: "replace a token of the same name instead of refusing"},
					redis, jsonOut,
				},
				Action: tokenAdd,
			},
			{
				Name:   "list",
				Usage:  "list the tokens with their live connection counts",
				Flags:  []cli.Flag{redis, jsonOut},
				Action: withTokenBus(0, tokenList),
			},
			{
				Name:      "show",
				Usage:     "show one token and its live connection count",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{redis, jsonOut},
				Action:    withTokenBus(1, tokenShow),
			},
			{
				Name:      "remove",
				Aliases:   []string{"rm"},
				Usage:     "delete a token; sessions it opened keep running",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{redis, jsonOut},
				Action:    withTokenBus(1, tokenRemove),
			},
		},
	}
}

// tokenArgs are a token subcommand's flags and positional arguments.
type tokenArgs struct {
	redis   string
	json    bool
	replace bool
	targets []string
	origins []string
	limit   int
	pos     []string
}

// stringsFlag is a repeatable flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// parseTokenArgs reads the flags urfave/cli parsed and then the flags it
// left in the arguments: it stops at the first positional argument, and
// "token add NAME --target ..." is the natural order to type.
func parseTokenArgs(c *cli.Context, positional int) (tokenArgs, error) {
	a := tokenArgs{
		redis:   c.String("redis"),
		json:    c.Bool("json"),
		replace: c.Bool("replace"),
		targets: c.StringSlice("target"),
		origins: c.StringSlice("origin"),
		limit:   c.Int("limit"),
	}
	fs := flag.NewFlagSet(c.Command.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, f := range c.Command.Flags {
		switch f.Names()[0] {
		case "redis":
			fs.StringVar(&a.redis, "redis", a.redis, "")
		case "json":
			fs.BoolVar(&a.json, "json", a.json, "")
		case "replace":
			fs.BoolVar(&a.replace, "replace", a.replace, "")
		case "target":
			fs.Var((*stringsFlag)(&a.targets), "target", "")
		case "origin":
			fs.Var((*stringsFlag)(&a.origins), "origin", "")
		case "limit":
			fs.IntVar(&a.limit, "limit", a.limit, "")
		}
	}
	rest := c.Args().Slice()
	for len(rest) > 0 { // each round consumes at least one argument
		if err := fs.Parse(rest); err != nil {
			return a, fmt.Errorf("token %s: %w", c.Command.Name, err)
		}
		rest = fs.Args()
		if len(rest) > 0 {
			a.pos = append(a.pos, rest[0])
			rest = rest[1:]
		}
	}
	if len(a.pos) != positional {
		if positional == 0 {
			return a, fmt.Errorf("token %s: unexpected argument %q", c.Command.Name, a.pos[0])
		}
		return a, fmt.Errorf("token %s: want exactly one token NAME, got %d arguments", c.Command.Name, len(a.pos))
	}
	return a, nil
}

// openTokenBus connects to the Redis the routers use.
func openTokenBus(a tokenArgs) (*redisbus.Bus, error) {
	bus, err := redisbus.New(redisbus.Config{URL: a.redis}, zap.NewNop())
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	return bus, nil
}

func tokenAdd(c *cli.Context) error {
	a, err := parseTokenArgs(c, 1)
	if err != nil {
		return err
	}
	t := token.Token{Name: a.pos[0], Targets: a.targets, Origins: a.origins, Limit: a.limit}
	if err := t.Validate(); err != nil {
		return fmt.Errorf("invalid token: %w", err)
	}
	bus, err := openTokenBus(a)
	if err != nil {
		return err
	}
	defer bus.Close()
	ctx := c.Context
	if !a.replace {
		_, err := bus.Token(ctx, t.Name)
		if err == nil {
			return fmt.Errorf("token %q exists; give --replace to overwrite it", t.Name)
		}
		if !errors.Is(err, token.ErrNotFound) {
			return err
		}
	}
	if err := bus.PutToken(ctx, t); err != nil {
		return err
	}
	return showToken(ctx, c.App.Writer, bus, t, a.json)
}

// withTokenBus makes the action of a subcommand that needs nothing
// checked before it connects: it parses the arguments (positional of
// them) and runs f with a bus on the routers' Redis, closed after.
func withTokenBus(positional int, f func(c *cli.Context, a tokenArgs, bus *redisbus.Bus) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		a, err := parseTokenArgs(c, positional)
		if err != nil {
			return err
		}
		bus, err := openTokenBus(a)
		if err != nil {
			return err
		}
		defer bus.Close()
		return f(c, a, bus)
	}
}

// notFound names the token in a not-found error, and passes other
// errors on.
func notFound(err error, name string) error {
	if errors.Is(err, token.ErrNotFound) {
		return fmt.Errorf("token %q not found", name)
	}
	return err
}

func tokenList(c *cli.Context, a tokenArgs, bus *redisbus.Bus) error {
	tokens, err := bus.ListTokens(c.Context)
	if err != nil {
		return err
	}
	views := make([]token.Listed, len(tokens))
	for i, t := range tokens {
		n, err := bus.Count(c.Context, t.Name)
		if err != nil {
			return err
		}
		views[i] = token.Listed{Token: t, Connections: n}
	}
	return token.WriteList(c.App.Writer, views, a.json)
}

func tokenShow(c *cli.Context, a tokenArgs, bus *redisbus.Bus) error {
	t, err := bus.Token(c.Context, a.pos[0])
	if err != nil {
		return notFound(err, a.pos[0])
	}
	return showToken(c.Context, c.App.Writer, bus, t, a.json)
}

func tokenRemove(c *cli.Context, a tokenArgs, bus *redisbus.Bus) error {
	name := a.pos[0]
	if err := bus.DeleteToken(c.Context, name); err != nil {
		return notFound(err, name)
	}
	if a.json {
		return token.WriteJSON(c.App.Writer, map[string]string{"removed": name})
	}
	_, err := fmt.Fprintf(c.App.Writer, "removed token %s\n", name)
	return err
}

// showToken prints one token with its live count.
func showToken(ctx context.Context, w io.Writer, bus *redisbus.Bus, t token.Token, asJSON bool) error {
	n, err := bus.Count(ctx, t.Name)
	if err != nil {
		return err
	}
	return token.WriteOne(w, token.Listed{Token: t, Connections: n}, asJSON)
}
