package deploy_test

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The files under test.
const (
	dashboardFile     = "grafana/polysocket.json"
	alertsFile        = "prometheus/alerts.yaml"
	composePromConfig = "prometheus/compose.yml"
	operationsDoc     = "../docs/OPERATIONS.md"
)

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []dashPanel `json:"panels"`
}

type dashDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashPanel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource *dashDatasource `json:"datasource"`
	Targets    []struct {
		RefID      string          `json:"refId"`
		Expr       string          `json:"expr"`
		Datasource *dashDatasource `json:"datasource"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"` // a collapsed row's
}

// panelQuery is one query of one panel.
type panelQuery struct {
	what string // panel title and refId
	expr string // as in the dashboard
}

// decodeFile decodes a YAML or JSON file into v; strict refuses unknown
// and duplicate fields.
func decodeFile(t *testing.T, path string, v any, strict bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	decode := yaml.Unmarshal
	if strict {
		decode = func(b []byte, v any, _ ...yaml.JSONOpt) error { return yaml.UnmarshalStrict(b, v) }
	}
	if err := decode(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func loadDashboard(t *testing.T) (dashboard, []panelQuery) {
	t.Helper()
	var d dashboard
	decodeFile(t, dashboardFile, &d, false)
	var qs []panelQuery
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			walk(p.Panels)
			for _, tg := range p.Targets {
				qs = append(qs, panelQuery{what: fmt.Sprintf("panel %q %s", p.Title, tg.RefID), expr: tg.Expr})
			}
		}
	}
	walk(d.Panels)
	return d, qs
}

// dashVar is a Grafana variable reference: $name, ${name} or
// ${name:format}.
var dashVar = regexp.MustCompile(`\$(\{([A-Za-z0-9_]+)(:[a-z]+)?\}|([A-Za-z0-9_]+))`)

// promVars are what the variables stand for when a query goes to
// Prometheus directly: every job and instance (the dashboard's "All"),
// and a rate window that spans the whole test.
var promVars = map[string]string{
	"job":             ".*",
	"instance":        ".*",
	"__rate_interval": "1m",
}

// expandVars substitutes the dashboard variables in expr; an unknown
// variable is an error.
func expandVars(expr string) (string, error) {
	var err error
	out := dashVar.ReplaceAllStringFunc(expr, func(m string) string {
		sub := dashVar.FindStringSubmatch(m)
		name := sub[2] + sub[4]
		v, ok := promVars[name]
		if !ok {
			err = fmt.Errorf("unknown variable $%s", name)
		}
		return v
	})
	return out, err
}

// alertRules is an alert rule file, decoded strictly.
type alertRules struct {
	Groups []struct {
		Name  string      `json:"name"`
		Rules []alertRule `json:"rules"`
	} `json:"groups"`
}

type alertRule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func loadAlerts(t *testing.T) []alertRule {
	t.Helper()
	var f alertRules
	decodeFile(t, alertsFile, &f, true)
	var out []alertRule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// metricName finds the metric names in a query: polysocket's own, the
// Go and process collectors', and Prometheus's up.
var metricName = regexp.MustCompile(`\b(polysocket_[a-z0-9_]+|go_[a-z0-9_]+|process_[a-z0-9_]+|up)\b`)

// TestDashboardAndAlertsFiles checks the dashboard's shape (datasource
// variable, every query on it, only known variables), that promtool
// accepts the alert rules, and that every alert has a summary, a
// runbook link and a runbook line in docs/OPERATIONS.md.
func TestDashboardAndAlertsFiles(t *testing.T) {
	d, qs := loadDashboard(t)
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name+":"+v.Type)
	}
	if !strings.Contains(strings.Join(vars, " "), "datasource:datasource") {
		t.Errorf("dashboard variables %v: want a datasource variable", vars)
	}
	if len(qs) < 9 {
		t.Errorf("only %d panel queries", len(qs))
	}
	checkPanels(t, d.Panels, map[int]bool{})
	for _, q := range qs {
		if _, err := expandVars(q.expr); err != nil {
			t.Errorf("%s: %v", q.what, err)
		}
	}

	out := runTool(t, "promtool", "check", "rules", alertsFile)
	t.Logf("promtool check rules: %s", strings.TrimSpace(out))
	// compose.yaml's Prometheus: its scrape jobs and rule file.
	out = runTool(t, "promtool", "check", "config", composePromConfig)
	t.Logf("promtool check config: %s", strings.TrimSpace(out))
	doc, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	_, alertsSection, _ := strings.Cut(string(doc), "\n## Alerts\n")
	rules := loadAlerts(t)
	if len(rules) < 6 {
		t.Errorf("only %d alert rules", len(rules))
	}
	for _, r := range rules {
		if r.Annotations["summary"] == "" || !strings.HasSuffix(r.Annotations["runbook_url"], "OPERATIONS.md#alerts") {
			t.Errorf("alert %s: needs a summary and a runbook_url to OPERATIONS.md#alerts", r.Alert)
		}
		if !strings.Contains(alertsSection, "`"+r.Alert+"`") {
			t.Errorf("alert %s: no runbook line in docs/OPERATIONS.md \"## Alerts\"", r.Alert)
		}
	}
}

// checkPanels checks that every panel has a unique id and queries
// the ${datasource} variable.
func checkPanels(t *testing.T, ps []dashPanel, ids map[int]bool) {
	t.Helper()
	for _, p := range ps {
		if ids[p.ID] || p.ID == 0 {
			t.Errorf("panel %q: id %d missing or repeated", p.Title, p.ID)
		}
		ids[p.ID] = true
		checkPanels(t, p.Panels, ids)
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: needs datasource ${datasource} and a query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q %s: needs an expr on datasource ${datasource}", p.Title, tg.RefID)
			}
		}
	}
}
