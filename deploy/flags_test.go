package deploy_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/polysocket/polysocket/internal/proctest"
)

// helpTimeout bounds one `polysocket … --help`.
const helpTimeout = 30 * time.Second

// command is what a command's --help says it takes.
type command struct {
	flags    map[string]flagInfo // by name and alias, without dashes
	env      map[string]bool     // POLYSOCKET_ variables
	commands map[string]bool     // subcommands
}

// flagInfo is one flag of a command's help.
type flagInfo struct {
	takesValue bool   // "--name value"
	def        string // the (default: …) text, quotes removed
}

// Lines of urfave/cli's help: "   --name value, -n value   usage (default: x) [$ENV]"
// (a repeatable flag adds "[ --name value ]"),
// and, under COMMANDS:, "   name, alias  usage".
var (
	helpFlag    = regexp.MustCompile(`^\s+(-{1,2}[a-z0-9-]+( value)?(, -{1,2}[a-z0-9-]+( value)?)*)( \[ [^]]* \])?\s{2,}(.*)$`)
	helpDefault = regexp.MustCompile(`\(default: "?([^")]*)"?\)`)
	helpEnv     = regexp.MustCompile(`\$(POLYSOCKET_[A-Z0-9_]+)`)
	helpCommand = regexp.MustCompile(`^\s{3,}([a-z][a-z0-9-]*)(, [a-z0-9-]+)*\s{2,}\S`)
)

// helps caches the help of each command path of the binary.
type helps struct {
	bin string
	mu  sync.Mutex
	by  map[string]command
}

// of runs `polysocket PATH… --help` (once per path) and parses it.
func (h *helps) of(t *testing.T, path ...string) command {
	t.Helper()
	key := strings.Join(path, " ")
	h.mu.Lock()
	defer h.mu.Unlock()
	if c, ok := h.by[key]; ok {
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), helpTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, append(append([]string(nil), path...), "--help")...)
	cmd.Env = proctest.Env()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("polysocket %s --help: %v", key, err)
	}
	c := parseHelp(string(out))
	if len(c.flags) == 0 {
		t.Fatalf("polysocket %s --help: no flags found in\n%s", key, out)
	}
	h.by[key] = c
	return c
}

func parseHelp(text string) command {
	c := command{flags: map[string]flagInfo{}, env: map[string]bool{}, commands: map[string]bool{}}
	section := ""
	for _, line := range strings.Split(text, "\n") {
		if strings.HasSuffix(line, ":") && !strings.HasPrefix(line, " ") {
			section = line
			continue
		}
		if m := helpFlag.FindStringSubmatch(line); m != nil {
			info := flagInfo{takesValue: m[2] != ""}
			if d := helpDefault.FindStringSubmatch(m[6]); d != nil {
				info.def = d[1]
			}
			for _, name := range strings.Split(m[1], ", ") {
				c.flags[strings.TrimLeft(strings.TrimSuffix(name, " value"), "-")] = info
			}
			for _, e := range helpEnv.FindAllStringSubmatch(m[6], -1) {
				c.env[e[1]] = true
			}
			continue
		}
		if section == "COMMANDS:" {
			if m := helpCommand.FindStringSubmatch(line); m != nil {
				c.commands[m[1]] = true
			}
		}
	}
	return c
}

// invocation is one way the deployment files run polysocket.
type invocation struct {
	where string
	args  []string // after the binary: subcommand, flags, arguments
	env   []string // names of the environment variables it sets
}

// check checks inv's subcommand, flags and POLYSOCKET_ variables
// against the binary's help. It returns the command path and the flag
// values given (the last of each).
func (h *helps) check(t *testing.T, inv invocation) ([]string, map[string]string) {
	t.Helper()
	var path []string
	cur := h.of(t)
	args := inv.args
	for len(args) > 0 && cur.commands[args[0]] {
		path = append(path, args[0])
		cur = h.of(t, path...)
		args = args[1:]
	}
	if len(path) == 0 {
		t.Errorf("%s: %q is not a polysocket command", inv.where, inv.args)
		return nil, nil
	}
	given := make(map[string]string)
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			continue // an argument, e.g. the token name
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f, ok := cur.flags[name]
		if !ok {
			t.Errorf("%s: polysocket %s has no flag %s", inv.where, strings.Join(path, " "), a)
			continue
		}
		if f.takesValue && !hasVal {
			if i+1 >= len(args) {
				t.Errorf("%s: %s needs a value", inv.where, a)
				break
			}
			i++
			val = args[i]
		}
		given[name] = val
	}
	for _, e := range inv.env {
		if strings.HasPrefix(e, "POLYSOCKET_") && !cur.env[e] {
			t.Errorf("%s: polysocket %s reads no %s", inv.where, strings.Join(path, " "), e)
		}
	}
	return path, given
}

// k8sInvocations are the polysocket containers of the manifests.
func k8sInvocations(o *objects) []invocation {
	var out []invocation
	for _, w := range o.workloads() {
		for _, c := range w.spec.Containers {
			if c.Image != polysocketImg {
				continue
			}
			inv := invocation{where: "kubernetes " + w.kind + "/" + w.name, args: append(c.Command, c.Args...)}
			for _, e := range c.Env {
				inv.env = append(inv.env, e.Name)
			}
			out = append(out, inv)
		}
	}
	return out
}

// composeService is the part of a compose.yaml service the tests read.
type composeService struct {
	Image       string            `json:"image"`
	Command     []string          `json:"command"`
	Environment map[string]string `json:"environment"`
}

// composeServices are compose.yaml's services that run the polysocket
// image (YAML anchors and merge keys resolved), by name.
func composeServices(t *testing.T) map[string]composeService {
	t.Helper()
	var f struct {
		Services map[string]composeService `json:"services"`
	}
	decodeFile(t, "compose.yaml", &f, false)
	out := make(map[string]composeService)
	for name, s := range f.Services {
		if strings.HasPrefix(s.Image, "polysocket") {
			out[name] = s
		}
	}
	if len(out) < 4 {
		t.Fatalf("compose.yaml: only %d polysocket services found", len(out))
	}
	return out
}

// composeInvocations are the polysocket services of compose.yaml.
func composeInvocations(t *testing.T) []invocation {
	t.Helper()
	var out []invocation
	for name, s := range composeServices(t) {
		inv := invocation{where: "compose.yaml service " + name, args: s.Command}
		for e := range s.Environment {
			inv.env = append(inv.env, e)
		}
		out = append(out, inv)
	}
	return out
}

// TestComposePrometheusScrapesEveryProcess checks that compose's
// Prometheus scrapes the admin port of every router and relay service,
// and that those services listen there.
func TestComposePrometheusScrapesEveryProcess(t *testing.T) {
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	decodeFile(t, composePromConfig, &cfg, false)
	scraped := make(map[string]bool)
	for _, j := range cfg.ScrapeConfigs {
		if !strings.HasPrefix(j.JobName, "polysocket") {
			t.Errorf("job %q: PolysocketTargetDown watches jobs named polysocket*", j.JobName)
		}
		for _, sc := range j.StaticConfigs {
			for _, tg := range sc.Targets {
				scraped[tg] = true
			}
		}
	}
	for name, s := range composeServices(t) {
		if len(s.Command) == 0 || s.Command[0] != "router" && s.Command[0] != "relay" {
			continue
		}
		admin := s.Environment["POLYSOCKET_ADMIN_LISTEN"]
		if i := slices.Index(s.Command, "--admin-listen"); i >= 0 && i+1 < len(s.Command) {
			admin = s.Command[i+1]
		}
		_, port, err := net.SplitHostPort(admin)
		if err != nil {
			t.Errorf("compose service %s: admin listener %q: %v", name, admin, err)
			continue
		}
		if !scraped[name+":"+port] {
			t.Errorf("compose service %s: its admin port %s:%s is not scraped by %s", name, name, port, composePromConfig)
		}
		delete(scraped, name+":"+port)
	}
	for tg := range scraped {
		t.Errorf("%s scrapes %s, which is no router or relay admin port of compose.yaml", composePromConfig, tg)
	}
}

// dockerfileInvocation is the image's default command and environment.
func dockerfileInvocation(t *testing.T) invocation {
	t.Helper()
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	inv := invocation{where: "Dockerfile CMD"}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "CMD "); ok {
			if err := json.Unmarshal([]byte(rest), &inv.args); err != nil {
				t.Fatalf("Dockerfile: CMD %s: %v", rest, err)
			}
		}
		if rest, ok := strings.CutPrefix(line, "ENV "); ok {
			name, _, _ := strings.Cut(rest, "=")
			inv.env = append(inv.env, name)
		}
	}
	if len(inv.args) == 0 {
		t.Fatal("Dockerfile: no CMD [...] found")
	}
	return inv
}

// TestDeployArgumentsAreRealFlags checks every polysocket argument and
// POLYSOCKET_ variable of the Kubernetes manifests, compose.yaml and the
// Dockerfile against the built binary's --help: a renamed or removed
// flag fails here until the deployment files follow. It also checks
// that the relay pods' termination grace covers their drain.
func TestDeployArgumentsAreRealFlags(t *testing.T) {
	h := &helps{bin: proctest.Build(t), by: map[string]command{}}
	_, o := manifests(t)
	invs := append(k8sInvocations(o), composeInvocations(t)...)
	invs = append(invs, dockerfileInvocation(t))
	for _, inv := range invs {
		path, given := h.check(t, inv)
		if strings.Join(path, " ") == "relay" && strings.HasPrefix(inv.where, "kubernetes") {
			checkGrace(t, o, h.of(t, "relay"), given)
		}
	}
}

// checkGrace checks that the relay StatefulSet's
// terminationGracePeriodSeconds covers --drain-timeout + --close-grace
// + --shutdown-timeout, as given or by default.
func checkGrace(t *testing.T, o *objects, relay command, given map[string]string) {
	t.Helper()
	var need time.Duration
	for _, name := range []string{"drain-timeout", "close-grace", "shutdown-timeout"} {
		v, ok := given[name]
		if !ok {
			v = relay.flags[name].def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("relay --%s %q: %v", name, v, err)
		}
		need += d
	}
	for _, s := range o.statefulSets {
		if s.Name != relaySet {
			continue
		}
		grace := time.Duration(ptrOr(s.Spec.Template.Spec.TerminationGracePeriodSeconds, 30)) * time.Second
		if grace < need {
			t.Errorf("relay terminationGracePeriodSeconds %v < drain + close grace + shutdown timeout %v", grace, need)
		}
	}
}
