package deploy_test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// k8sDir holds the Kubernetes manifests.
const k8sDir = "kubernetes"

// The names the manifests are built around.
const (
	namespace      = "polysocket"
	polysocketImg  = "polysocket" // the image name kustomization.yaml rewrites
	relaySet       = "relay"      // the relay StatefulSet
	nonrootUID     = 65532        // distroless's nonroot, the Dockerfile's USER
	podNameLabel   = "statefulset.kubernetes.io/pod-name"
	promPortAnnot  = "prometheus.io/port"
	promScrapeNote = "prometheus.io/scrape"
)

// kustomization is the part of a kustomization.yaml the manifests use;
// decoding it strictly refuses anything else.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

// objects are the manifests' objects by type.
type objects struct {
	deployments  []*appsv1.Deployment
	statefulSets []*appsv1.StatefulSet
	jobs         []*batchv1.Job
	services     []*corev1.Service
	secrets      []*corev1.Secret
	namespaces   []*corev1.Namespace
	ingresses    []*networkingv1.Ingress
	pdbs         []*policyv1.PodDisruptionBudget
}

// workload is a pod template with where it comes from.
type workload struct {
	kind, name string
	replicas   int32
	labels     map[string]string
	annots     map[string]string
	spec       *corev1.PodSpec
}

// typeMeta is read first, to pick the Go type of a document.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// splitYAML splits a multi-document YAML file at its "---" lines and
// drops documents of comments only.
func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(b), -1) {
		for _, line := range strings.Split(d, "\n") {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
				docs = append(docs, []byte(d))
				break
			}
		}
	}
	return docs
}

// loadKustomization reads kustomization.yaml strictly.
func loadKustomization(t *testing.T) kustomization {
	t.Helper()
	var k kustomization
	decodeFile(t, filepath.Join(k8sDir, "kustomization.yaml"), &k, true)
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Fatalf("kustomization.yaml: apiVersion %q kind %q", k.APIVersion, k.Kind)
	}
	return k
}

// loadObjects decodes every document of every listed file into its
// k8s.io/api type, refusing unknown and duplicate fields.
func loadObjects(t *testing.T, files []string) *objects {
	t.Helper()
	o := new(objects)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(k8sDir, f))
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range splitYAML(b) {
			if err := o.add(doc); err != nil {
				t.Errorf("%s, document %d: %v", f, i+1, err)
			}
		}
	}
	return o
}

func (o *objects) add(doc []byte) error {
	var tm typeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		return decode(doc, &o.deployments)
	case "apps/v1 StatefulSet":
		return decode(doc, &o.statefulSets)
	case "batch/v1 Job":
		return decode(doc, &o.jobs)
	case "v1 Service":
		return decode(doc, &o.services)
	case "v1 Secret":
		return decode(doc, &o.secrets)
	case "v1 Namespace":
		return decode(doc, &o.namespaces)
	case "networking.k8s.io/v1 Ingress":
		return decode(doc, &o.ingresses)
	case "policy/v1 PodDisruptionBudget":
		return decode(doc, &o.pdbs)
	}
	return fmt.Errorf("no Go type known for apiVersion %q kind %q", tm.APIVersion, tm.Kind)
}

// decode decodes doc strictly (no unknown or duplicate fields) into a
// new T appended to list.
func decode[T any](doc []byte, list *[]*T) error {
	v := new(T)
	*list = append(*list, v)
	return yaml.UnmarshalStrict(doc, v)
}

// workloads are the pod templates of the Deployments, StatefulSets and
// Jobs.
func (o *objects) workloads() []workload {
	var ws []workload
	for _, d := range o.deployments {
		ws = append(ws, workload{"Deployment", d.Name, ptrOr(d.Spec.Replicas, 1), d.Spec.Template.Labels, d.Spec.Template.Annotations, &d.Spec.Template.Spec})
	}
	for _, s := range o.statefulSets {
		ws = append(ws, workload{"StatefulSet", s.Name, ptrOr(s.Spec.Replicas, 1), s.Spec.Template.Labels, s.Spec.Template.Annotations, &s.Spec.Template.Spec})
	}
	for _, j := range o.jobs {
		ws = append(ws, workload{"Job", j.Name, 1, j.Spec.Template.Labels, j.Spec.Template.Annotations, &j.Spec.Template.Spec})
	}
	return ws
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// metas are every object's kind/name and namespace, for the namespace
// check.
func (o *objects) metas() map[string]string {
	m := make(map[string]string)
	putMetas(m, "Deployment", o.deployments)
	putMetas(m, "StatefulSet", o.statefulSets)
	putMetas(m, "Job", o.jobs)
	putMetas(m, "Service", o.services)
	putMetas(m, "Secret", o.secrets)
	putMetas(m, "Ingress", o.ingresses)
	putMetas(m, "PodDisruptionBudget", o.pdbs)
	return m
}

func putMetas[T metav1.Object](m map[string]string, kind string, list []T) {
	for _, v := range list {
		m[kind+"/"+v.GetName()] = v.GetNamespace()
	}
}

// manifests loads kustomization.yaml and every file it lists, checking
// that it lists exactly the YAML files of the directory.
func manifests(t *testing.T) (kustomization, *objects) {
	t.Helper()
	k := loadKustomization(t)
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" {
			have = append(have, b)
		}
	}
	listed := slices.Clone(k.Resources)
	sort.Strings(listed)
	if !slices.Equal(have, listed) {
		t.Errorf("kustomization.yaml lists %v; the directory holds %v", listed, have)
	}
	return k, loadObjects(t, k.Resources)
}

// TestKubernetesManifestsDecode decodes every object strictly and checks
// the namespace and the image kustomization.yaml rewrites.
func TestKubernetesManifestsDecode(t *testing.T) {
	k, o := manifests(t)
	if k.Namespace != namespace {
		t.Errorf("kustomization namespace %q, want %q", k.Namespace, namespace)
	}
	if len(o.namespaces) != 1 || o.namespaces[0].Name != namespace {
		t.Errorf("want one Namespace %q", namespace)
	}
	for what, ns := range o.metas() {
		if ns != namespace {
			t.Errorf("%s: namespace %q, want %q (so kubectl apply -f works too)", what, ns, namespace)
		}
	}
	if len(k.Images) != 1 || k.Images[0].Name != polysocketImg {
		t.Errorf("kustomization images: want one rewrite of %q", polysocketImg)
	}
	n := 0
	for _, w := range o.workloads() {
		for _, c := range w.spec.Containers {
			if c.Image == polysocketImg {
				n++
			}
		}
	}
	if n < 3 {
		t.Errorf("only %d containers use image %q (router, relay, tokens expected)", n, polysocketImg)
	}
}

// TestKubernetesHardening checks every pod and container's security
// context, resources and probes.
func TestKubernetesHardening(t *testing.T) {
	_, o := manifests(t)
	for _, w := range o.workloads() {
		where := w.kind + "/" + w.name
		ps := w.spec
		if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken should be false (no pod talks to the API)", where)
		}
		psc := ps.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
			t.Errorf("%s: pod securityContext needs runAsNonRoot and a non-zero runAsUser", where)
		}
		if psc != nil && (psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault) {
			t.Errorf("%s: seccompProfile RuntimeDefault (the restricted Pod Security level)", where)
		}
		for _, c := range ps.Containers {
			cw := where + " container " + c.Name
			checkContainerSecurity(t, cw, c)
			checkResources(t, cw, c)
			if c.Image == polysocketImg && psc != nil && psc.RunAsUser != nil && *psc.RunAsUser != nonrootUID {
				t.Errorf("%s: runAsUser %d, want the image's nonroot user %d", cw, *psc.RunAsUser, nonrootUID)
			}
			if c.Image == polysocketImg && w.kind != "Job" {
				checkProbes(t, cw, c)
				checkMetricsAnnotations(t, cw, w, c)
			}
		}
	}
}

func checkContainerSecurity(t *testing.T, where string, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Errorf("%s: no securityContext", where)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("%s: allowPrivilegeEscalation must be false", where)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("%s: readOnlyRootFilesystem must be true", where)
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Errorf("%s: capabilities must drop ALL and add none", where)
	case sc.Privileged != nil && *sc.Privileged:
		t.Errorf("%s: privileged", where)
	}
}

func checkResources(t *testing.T, where string, c corev1.Container) {
	t.Helper()
	req, lim := c.Resources.Requests, c.Resources.Limits
	if req.Cpu().IsZero() || req.Memory().IsZero() {
		t.Errorf("%s: needs cpu and memory requests", where)
	}
	if lim.Memory().IsZero() || lim.Memory().Cmp(*req.Memory()) < 0 {
		t.Errorf("%s: needs a memory limit at or above its request", where)
	}
}

func checkProbes(t *testing.T, where string, c corev1.Container) {
	t.Helper()
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s: %s probe should GET %s", where, p.name, p.path)
			continue
		}
		if !hasPort(c, p.probe.HTTPGet.Port.String()) {
			t.Errorf("%s: %s probe port %s is not a container port", where, p.name, p.probe.HTTPGet.Port.String())
		}
	}
}

// checkMetricsAnnotations checks that the scrape annotations name the
// admin port the container listens on with --admin-listen.
func checkMetricsAnnotations(t *testing.T, where string, w workload, c corev1.Container) {
	t.Helper()
	if w.annots[promScrapeNote] != "true" {
		t.Errorf("%s: pod lacks %s: \"true\"", where, promScrapeNote)
	}
	port := w.annots[promPortAnnot]
	if !hasPort(c, port) {
		t.Errorf("%s: %s %q is not a container port", where, promPortAnnot, port)
	}
	if i := slices.Index(c.Args, "--admin-listen"); i < 0 || i+1 >= len(c.Args) || !strings.HasSuffix(c.Args[i+1], ":"+port) {
		t.Errorf("%s: --admin-listen should serve the scraped port %s", where, port)
	}
}

// hasPort reports whether c has a port of that name or number.
func hasPort(c corev1.Container, port string) bool {
	for _, p := range c.Ports {
		if p.Name == port || strconv.Itoa(int(p.ContainerPort)) == port {
			return true
		}
	}
	return false
}

// selects reports whether a selector matches labels.
func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// podsOf returns the workloads whose pods sel selects, counting a
// StatefulSet's pod-name label as the labels of its pods.
func podsOf(o *objects, sel map[string]string) []workload {
	var out []workload
	for _, w := range o.workloads() {
		if selects(sel, w.labels) {
			out = append(out, w)
			continue
		}
		if w.kind != "StatefulSet" {
			continue
		}
		for i := range int(w.replicas) {
			labels := map[string]string{podNameLabel: w.name + "-" + strconv.Itoa(i)}
			for k, v := range w.labels {
				labels[k] = v
			}
			if selects(sel, labels) {
				out = append(out, w)
				break
			}
		}
	}
	return out
}

// TestKubernetesWiring checks that the objects refer to each other
// correctly: selectors, Service ports, Ingress backends and TLS,
// Secrets, and the per-relay Services and hosts against the relay
// StatefulSet's replicas.
func TestKubernetesWiring(t *testing.T) {
	_, o := manifests(t)
	for _, d := range o.deployments {
		if !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
			t.Errorf("Deployment/%s: selector does not match its template", d.Name)
		}
	}
	for _, s := range o.statefulSets {
		if !selects(s.Spec.Selector.MatchLabels, s.Spec.Template.Labels) {
			t.Errorf("StatefulSet/%s: selector does not match its template", s.Name)
		}
		if svc := findService(o, s.Spec.ServiceName); svc == nil {
			t.Errorf("StatefulSet/%s: serviceName %q is no Service", s.Name, s.Spec.ServiceName)
		}
	}
	for _, svc := range o.services {
		checkService(t, o, svc)
	}
	for _, p := range o.pdbs {
		if len(podsOf(o, p.Spec.Selector.MatchLabels)) == 0 {
			t.Errorf("PodDisruptionBudget/%s: selects no pods", p.Name)
		}
	}
	checkSecretRefs(t, o)
	checkEnvRefs(t, o)
	checkIngress(t, o)
	checkRelayHosts(t, o)
}

func findService(o *objects, name string) *corev1.Service {
	for _, s := range o.services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func checkService(t *testing.T, o *objects, svc *corev1.Service) {
	t.Helper()
	pods := podsOf(o, svc.Spec.Selector)
	if len(pods) == 0 {
		t.Errorf("Service/%s: selects no pods", svc.Name)
		return
	}
	for _, p := range svc.Spec.Ports {
		for _, w := range pods {
			ok := false
			for _, c := range w.spec.Containers {
				ok = ok || hasPort(c, p.TargetPort.String())
			}
			if !ok {
				t.Errorf("Service/%s port %s: targetPort %s is no port of %s/%s", svc.Name, p.Name, p.TargetPort.String(), w.kind, w.name)
			}
		}
	}
}

// checkSecretRefs checks every secretKeyRef names a Secret and a key it
// holds.
func checkSecretRefs(t *testing.T, o *objects) {
	t.Helper()
	keys := make(map[string]bool)
	for _, s := range o.secrets {
		for k := range s.StringData {
			keys[s.Name+"/"+k] = true
		}
		for k := range s.Data {
			keys[s.Name+"/"+k] = true
		}
	}
	for _, w := range o.workloads() {
		for _, c := range w.spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					continue
				}
				r := e.ValueFrom.SecretKeyRef
				if !keys[r.Name+"/"+r.Key] {
					t.Errorf("%s/%s %s: env %s refers to secret %s key %s, which the manifests do not hold", w.kind, w.name, c.Name, e.Name, r.Name, r.Key)
				}
			}
		}
	}
}

// varRef is Kubernetes's $(VAR) expansion in args and env values.
var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// checkEnvRefs checks that each $(VAR) in a container's args and env
// values names a variable defined before it (Kubernetes leaves an
// unknown reference as it is, which would reach the process verbatim).
func checkEnvRefs(t *testing.T, o *objects) {
	t.Helper()
	for _, w := range o.workloads() {
		for _, c := range w.spec.Containers {
			defined := make(map[string]bool)
			check := func(what, s string) {
				for _, m := range varRef.FindAllStringSubmatch(s, -1) {
					if !defined[m[1]] {
						t.Errorf("%s/%s %s: %s refers to $(%s), not defined before it", w.kind, w.name, c.Name, what, m[1])
					}
				}
			}
			for _, e := range c.Env {
				check("env "+e.Name, e.Value)
				defined[e.Name] = true
			}
			for _, a := range append(slices.Clone(c.Command), c.Args...) {
				check("argument", a)
			}
		}
	}
}

// checkIngress checks the backends exist with the named port, and that
// every host is covered by a TLS entry whose secret is a TLS Secret.
func checkIngress(t *testing.T, o *objects) {
	t.Helper()
	tlsSecrets := make(map[string]bool)
	for _, s := range o.secrets {
		if s.Type == corev1.SecretTypeTLS {
			tlsSecrets[s.Name] = true
		}
	}
	if len(o.ingresses) == 0 {
		t.Fatal("no Ingress")
	}
	for _, ing := range o.ingresses {
		covered := make(map[string]bool)
		for _, tls := range ing.Spec.TLS {
			if !tlsSecrets[tls.SecretName] {
				t.Errorf("Ingress/%s: TLS secret %q is not a kubernetes.io/tls Secret of the manifests", ing.Name, tls.SecretName)
			}
			for _, h := range tls.Hosts {
				covered[h] = true
			}
		}
		for _, r := range ing.Spec.Rules {
			if !covered[r.Host] {
				t.Errorf("Ingress/%s: host %q has no TLS entry", ing.Name, r.Host)
			}
			for _, p := range r.HTTP.Paths {
				b := p.Backend.Service
				svc := findService(o, b.Name)
				if svc == nil {
					t.Errorf("Ingress/%s host %q: backend %q is no Service", ing.Name, r.Host, b.Name)
					continue
				}
				if !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool {
					return sp.Name == b.Port.Name && b.Port.Name != "" || sp.Port == b.Port.Number && b.Port.Number != 0
				}) {
					t.Errorf("Ingress/%s host %q: Service %s has no port %v", ing.Name, r.Host, b.Name, b.Port)
				}
			}
		}
	}
}

// relayDomain is the domain under which the relays' names live, from
// the relay's --fqdn $(POD_NAME).DOMAIN.
func relayDomain(t *testing.T, o *objects) (string, int) {
	t.Helper()
	for _, s := range o.statefulSets {
		if s.Name != relaySet {
			continue
		}
		args := s.Spec.Template.Spec.Containers[0].Args
		i := slices.Index(args, "--fqdn")
		if i < 0 || i+1 >= len(args) {
			t.Fatal("relay: no --fqdn")
		}
		domain, ok := strings.CutPrefix(args[i+1], "$(POD_NAME).")
		if !ok {
			t.Fatalf("relay --fqdn %q: want $(POD_NAME).DOMAIN, so each relay's name follows its pod", args[i+1])
		}
		return domain, int(ptrOr(s.Spec.Replicas, 1))
	}
	t.Fatalf("no StatefulSet %q", relaySet)
	return "", 0
}

// checkRelayHosts checks that relay-0 … relay-(N-1), and no other, each
// have a Service selecting that pod alone (publishing it while not
// ready, so a draining relay keeps its sessions), an Ingress rule for
// *.relay-i.DOMAIN to it, and a TLS host.
func checkRelayHosts(t *testing.T, o *objects) {
	t.Helper()
	domain, n := relayDomain(t, o)
	want := make(map[string]string) // host → service
	for i := range n {
		pod := relaySet + "-" + strconv.Itoa(i)
		want["*."+pod+"."+domain] = pod
		svc := findService(o, pod)
		if svc == nil {
			t.Errorf("no Service %s for relay pod %s", pod, pod)
			continue
		}
		if !maps.Equal(svc.Spec.Selector, map[string]string{podNameLabel: pod}) {
			t.Errorf("Service/%s: selector %v, want %s: %s", pod, svc.Spec.Selector, podNameLabel, pod)
		}
		if !svc.Spec.PublishNotReadyAddresses {
			t.Errorf("Service/%s: publishNotReadyAddresses must be true: a draining relay (readyz 503) still serves its sessions", pod)
		}
	}
	got := make(map[string]string)
	for _, ing := range o.ingresses {
		for _, r := range ing.Spec.Rules {
			if strings.HasPrefix(r.Host, "*.") {
				got[r.Host] = r.HTTP.Paths[0].Backend.Service.Name
			}
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("relay Ingress hosts %v, want %v (one per relay replica)", got, want)
	}
	for _, svc := range o.services {
		if rest, ok := strings.CutPrefix(svc.Name, relaySet+"-"); ok {
			if i, err := strconv.Atoi(rest); err == nil && i >= n {
				t.Errorf("Service/%s: relay has %d replicas", svc.Name, n)
			}
		}
	}
}
