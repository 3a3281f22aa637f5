package browser

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// firefoxPath is Debian's Firefox ESR. The tests never download a browser.
const firefoxPath = "/usr/bin/firefox-esr"

// Bounds of the Firefox process.
const (
	firefoxStartTimeout = 60 * time.Second // to the BiDi endpoint and a session
	firefoxStopTimeout  = 15 * time.Second // browser.close to the process's exit
)

// firefoxPrefs are what goes into the profile's user.js. The network is
// closed here and the tests must not wait on it: no updates, telemetry,
// studies, safe browsing lists, captive portal checks or prefetching.
// Timers of background tabs keep running, as the library's polls are
// timers.
func firefoxPrefs() map[string]any {
	return map[string]any{
		"app.update.auto":                            false,
		"app.update.enabled":                         false,
		"app.normandy.enabled":                       false,
		"app.shield.optoutstudies.enabled":           false,
		"browser.shell.checkDefaultBrowser":          false,
		"browser.startup.homepage_override.mstone":   "ignore",
		"browser.startup.page":                       0,
		"browser.newtabpage.enabled":                 false,
		"browser.safebrowsing.malware.enabled":       false,
		"browser.safebrowsing.phishing.enabled":      false,
		"browser.safebrowsing.downloads.enabled":     false,
		"browser.safebrowsing.update.enabled":        false,
		"browser.search.update":                      false,
		"browser.ping-centre.telemetry":              false,
		"datareporting.policy.dataSubmissionEnabled": false,
		"datareporting.healthreport.uploadEnabled":   false,
		"toolkit.telemetry.enabled":                  false,
		"toolkit.telemetry.unified":                  false,
		"toolkit.telemetry.server":                   "",
		"extensions.update.enabled":                  false,
		"extensions.getAddons.cache.enabled":         false,
		"extensions.blocklist.enabled":               false,
		"network.captive-portal-service.enabled":     false,
		"network.connectivity-service.enabled":       false,
		"network.dns.disablePrefetch":                true,
		"network.prefetch-next":                      false,
		"network.predictor.enabled":                  false,
		"network.http.speculative-parallel-limit":    0,
		"media.gmp-manager.updateEnabled":            false,
		"services.settings.server":                   "http://127.0.0.1:9/",
		"dom.security.https_first":                   false,
		"dom.timeout.enable_budget_timer_throttling": false,
		"dom.min_background_timeout_value":           4,
		"browser.aboutwelcome.enabled":               false,
	}
}

// proxyPrefs send every request through the HTTP proxy at hostport,
// loopback ones included (Firefox never proxies localhost otherwise).
func proxyPrefs(hostport string) map[string]any {
	host, port, _ := strings.Cut(hostport, ":")
	var p int
	fmt.Sscan(port, &p)
	return map[string]any{
		"network.proxy.type":                      1,
		"network.proxy.http":                      host,
		"network.proxy.http_port":                 p,
		"network.proxy.ssl":                       host,
		"network.proxy.ssl_port":                  p,
		"network.proxy.share_proxy_settings":      true,
		"network.proxy.no_proxies_on":             "",
		"network.proxy.allow_hijacking_localhost": true,
	}
}

// userJS renders prefs as user.js lines.
func userJS(prefs ...map[string]any) string {
	var b strings.Builder
	for _, m := range prefs {
		for k, v := range m {
			val, _ := json.Marshal(v)
			fmt.Fprintf(&b, "user_pref(%q, %s);\n", k, val)
		}
	}
	return b.String()
}

// firefox is a headless Firefox driven over WebDriver BiDi, which it
// serves itself on --remote-debugging-port (no geckodriver).
type firefox struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has been waited for
	out     *lockedBuffer
	bidi    *bidi
	version string
	stopped bool

	mu      sync.Mutex
	console map[string][]string // log entries per browsing context
}

var _ Browser = (*firefox)(nil)

// bidiURLRE finds the endpoint in Firefox's stderr.
var bidiURLRE = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)

// startFirefox starts Firefox ESR with a fresh profile, stopped at t's
// cleanup, and opens a BiDi session. A missing browser fails the test.
func startFirefox(t *testing.T, l launch) Browser {
	t.Helper()
	if _, err := os.Stat(firefoxPath); err != nil {
		t.Fatalf("the browser tests need Firefox ESR at %s (Debian: apt-get install firefox-esr): %v", firefoxPath, err)
	}
	dir := t.TempDir()
	prefs := []map[string]any{firefoxPrefs()}
	if l.Proxy != "" {
		prefs = append(prefs, proxyPrefs(l.Proxy))
	}
	if err := os.WriteFile(filepath.Join(dir, "user.js"), []byte(userJS(prefs...)), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &firefox{out: &lockedBuffer{max: 1 << 20}, exited: make(chan struct{}), console: map[string][]string{}}
	url, err := f.spawn(dir)
	if err != nil {
		t.Fatalf("starting Firefox (%s): %v", firefoxPath, err)
	}
	t.Cleanup(func() { _ = f.Close() })
	fail := func(err error) {
		t.Helper()
		t.Fatalf("driving Firefox over WebDriver BiDi (%s): %v\nbrowser output:\n%s", url, err, f.out.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), firefoxStartTimeout)
	defer cancel()
	if f.bidi, err = dialBiDi(ctx, url+"/session", f.onEvent); err != nil {
		fail(err)
	}
	var sess struct {
		Capabilities struct {
			BrowserName    string `json:"browserName"`
			BrowserVersion string `json:"browserVersion"`
		} `json:"capabilities"`
	}
	if err := f.bidi.call(ctx, "session.new", map[string]any{"capabilities": map[string]any{}}, &sess); err != nil {
		fail(err)
	}
	f.version = sess.Capabilities.BrowserName + " " + sess.Capabilities.BrowserVersion
	if err := f.bidi.call(ctx, "session.subscribe", map[string]any{"events": []string{"log.entryAdded"}}, nil); err != nil {
		fail(err)
	}
	return f
}

// spawn starts the process in its own process group (its content
// processes with it) and returns the BiDi endpoint it prints.
func (f *firefox) spawn(profile string) (string, error) {
	cmd := exec.Command(firefoxPath, "--headless", "--no-remote", "--profile", profile, "--remote-debugging-port", "0")
	cmd.Env = append(os.Environ(), "MOZ_CRASHREPORTER_DISABLE=1", "MOZ_DISABLE_AUTO_SAFE_MODE=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout = f.out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	f.cmd = cmd
	found := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			_, _ = f.out.Write([]byte(line + "\n"))
			if m := bidiURLRE.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() {
		<-scanned // Wait closes the pipe: read it all first
		_ = cmd.Wait()
		close(f.exited)
	}()
	select {
	case u := <-found:
		return u, nil
	case <-f.exited:
		return "", fmt.Errorf("firefox exited: %v\n%s", cmd.ProcessState, f.out.String())
	case <-time.After(firefoxStartTimeout):
		f.kill()
		return "", fmt.Errorf("no BiDi endpoint on stderr after %v\n%s", firefoxStartTimeout, f.out.String())
	}
}

// onEvent keeps the page's log entries.
func (f *firefox) onEvent(method string, params json.RawMessage) {
	if method != "log.entryAdded" {
		return
	}
	var e struct {
		Level  string `json:"level"`
		Text   string `json:"text"`
		Source struct {
			Context string `json:"context"`
		} `json:"source"`
	}
	if json.Unmarshal(params, &e) != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.console[e.Source.Context]) < 1000 {
		f.console[e.Source.Context] = append(f.console[e.Source.Context], e.Level+": "+e.Text)
	}
}

func (f *firefox) Name() string    { return "firefox" }
func (f *firefox) Version() string { return f.version }

// kill ends the process group by the process's id.
func (f *firefox) kill() {
	_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
	<-f.exited
}

// Close asks the browser to close (browser.close), waits for its process
// and kills it if it lingers; later calls do nothing.
func (f *firefox) Close() error {
	if f.stopped {
		return nil
	}
	f.stopped = true
	if f.bidi != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = f.bidi.call(ctx, "browser.close", nil, nil)
		cancel()
		f.bidi.close()
	}
	select {
	case <-f.exited:
	case <-time.After(firefoxStopTimeout):
		f.kill()
	}
	// Content processes that outlived the parent go with its group.
	_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
	return nil
}

// NewPage creates a tab (a top-level browsing context).
func (f *firefox) NewPage(ctx context.Context) (Page, error) {
	var r struct {
		Context string `json:"context"`
	}
	if err := f.bidi.call(ctx, "browsingContext.create", map[string]any{"type": "tab"}, &r); err != nil {
		return nil, err
	}
	return &firefoxPage{f: f, id: r.Context}, nil
}

// firefoxPage is a Firefox tab.
type firefoxPage struct {
	f  *firefox
	id string
}

func (p *firefoxPage) Navigate(ctx context.Context, url string) error {
	return p.f.bidi.call(ctx, "browsingContext.navigate", map[string]any{"context": p.id, "url": url, "wait": "complete"}, nil)
}

func (p *firefoxPage) Eval(ctx context.Context, script string) (json.RawMessage, error) {
	var r struct {
		Type             string      `json:"type"` // success or exception
		Result           remoteValue `json:"result"`
		ExceptionDetails struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	err := p.f.bidi.call(ctx, "script.evaluate", map[string]any{
		"expression":      script,
		"target":          map[string]any{"context": p.id},
		"awaitPromise":    false,
		"resultOwnership": "none",
	}, &r)
	if err != nil {
		return nil, err
	}
	if r.Type == "exception" {
		return nil, fmt.Errorf("exception: %s", r.ExceptionDetails.Text)
	}
	v, err := r.Result.toJSON()
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func (p *firefoxPage) Console() []string {
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	return append([]string(nil), p.f.console[p.id]...)
}

func (p *firefoxPage) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.f.bidi.call(ctx, "browsingContext.close", map[string]any{"context": p.id}, nil)
}
