package deploy

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/internal/redistest"
	"github.com/dyplsq/dyplsq/monitor"
)

// manifests are the objects of deploy/kubernetes, each decoded strictly
// (an unknown or misspelt field fails) into its Kubernetes API type.
type manifests struct {
	deployment *appsv1.Deployment
	pdb        *policyv1.PodDisruptionBudget
	service    *corev1.Service
	configMap  *corev1.ConfigMap
	secret     *corev1.Secret
	files      []string // the files holding them
	kustomize  struct {
		Resources []string `json:"resources"`
	}
}

func strict(t *testing.T, file string, doc []byte, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(doc, into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	paths, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	m := &manifests{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range bytes.Split(b, []byte("\n---\n")) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			name := filepath.Base(p)
			switch tm.Kind {
			case "Kustomization":
				var k struct {
					metav1.TypeMeta `json:",inline"`
					Labels          []map[string]any `json:"labels"`
					Resources       []string         `json:"resources"`
				}
				strict(t, p, doc, &k)
				m.kustomize.Resources = k.Resources
				continue
			case "Deployment":
				m.deployment = &appsv1.Deployment{}
				strict(t, p, doc, m.deployment)
			case "PodDisruptionBudget":
				m.pdb = &policyv1.PodDisruptionBudget{}
				strict(t, p, doc, m.pdb)
			case "Service":
				m.service = &corev1.Service{}
				strict(t, p, doc, m.service)
			case "ConfigMap":
				m.configMap = &corev1.ConfigMap{}
				strict(t, p, doc, m.configMap)
			case "Secret":
				m.secret = &corev1.Secret{}
				strict(t, p, doc, m.secret)
				continue // an example, not applied
			default:
				t.Fatalf("%s: unexpected kind %q", p, tm.Kind)
			}
			m.files = append(m.files, name)
		}
	}
	if m.deployment == nil || m.pdb == nil || m.service == nil || m.configMap == nil || m.secret == nil {
		t.Fatalf("want a Deployment, a PodDisruptionBudget, a Service, a ConfigMap and a Secret: %+v", m)
	}
	return m
}

// TestKubernetesManifests checks what the worker relies on in
// deploy/kubernetes: probes on the monitor's real paths and port,
// resources, credentials from the Secret, a PodDisruptionBudget covering
// the pods, and a grace period above the worker's shutdown timeout.
func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)
	for _, f := range m.files {
		if !contains(m.kustomize.Resources, f) {
			t.Errorf("kustomization.yaml does not list %s", f)
		}
	}
	d := m.deployment
	pod := d.Spec.Template
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Error("fewer than 2 replicas: the PodDisruptionBudget could never let one go")
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		t.Errorf("the Deployment's selector does not match its pods: %v", err)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want the worker alone", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	env := containerEnv(m, c)

	checkProbes(t, c, env["MONITOR_ADDR"])
	checkResources(t, c)
	checkSecrets(t, m, c)
	checkGrace(t, pod.Spec.TerminationGracePeriodSeconds, env["DYPLS_TIMEOUT"])

	pdbSel, err := metav1.LabelSelectorAsSelector(m.pdb.Spec.Selector)
	if err != nil || pdbSel.Empty() || !pdbSel.Matches(labels.Set(pod.Labels)) {
		t.Errorf("the PodDisruptionBudget does not select the worker's pods: %v", err)
	}
	if m.pdb.Spec.MaxUnavailable == nil && m.pdb.Spec.MinAvailable == nil {
		t.Error("the PodDisruptionBudget sets neither maxUnavailable nor minAvailable")
	}
	if !labels.SelectorFromSet(m.service.Spec.Selector).Matches(labels.Set(pod.Labels)) {
		t.Error("the Service does not select the worker's pods")
	}
}

// containerEnv is the container's environment: its ConfigMap's data, then
// its own plain values.
func containerEnv(m *manifests, c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef != nil && from.ConfigMapRef.Name == m.configMap.Name {
			for k, v := range m.configMap.Data {
				env[k] = v
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		}
	}
	return env
}

func checkProbes(t *testing.T, c corev1.Container, monitorAddr string) {
	t.Helper()
	if !strings.HasSuffix(monitorAddr, ":8080") || strings.HasPrefix(monitorAddr, "127.") {
		t.Errorf("MONITOR_ADDR %q: want all interfaces on 8080, where the probes go", monitorAddr)
	}
	port := map[string]int32{}
	for _, p := range c.Ports {
		port[p.Name] = p.ContainerPort
	}
	for _, pr := range []struct {
		what  string
		probe *corev1.Probe
		path  string
	}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", pr.what)
			continue
		}
		g := pr.probe.HTTPGet
		p := g.Port.IntVal
		if g.Port.StrVal != "" {
			p = port[g.Port.StrVal]
		}
		if g.Path != pr.path || p != 8080 {
			t.Errorf("%s probe on %s port %d, want %s on the monitor's 8080", pr.what, g.Path, p, pr.path)
		}
		probeAnswers(t, pr.path)
	}
}

// probeAnswers checks that the monitor serves path without credentials
// even when it has them, as the kubelet calls it.
func probeAnswers(t *testing.T, path string) {
	t.Helper()
	rdb := redistest.Client(t)
	s, err := monitor.New(monitor.Config{Addr: "0.0.0.0:0", User: "ops", Password: "pw",
		RedisConnOpt: monitor.SharedRedis{Client: rdb}, Inspector: asynq.NewInspectorFromRedisClient(rdb),
		KeyPrefix: redistest.Namespace(t), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Shutdown(context.Background()) }()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	if rec.Code != http.StatusOK {
		t.Errorf("GET %s without credentials: %d %s", path, rec.Code, rec.Body.String())
	}
}

func checkResources(t *testing.T, c corev1.Container) {
	t.Helper()
	req, lim := c.Resources.Requests, c.Resources.Limits
	if req.Cpu().IsZero() || req.Memory().IsZero() {
		t.Errorf("requests %v: want cpu and memory", req)
	}
	if lim.Memory().IsZero() || lim.Memory().Cmp(*req.Memory()) < 0 {
		t.Errorf("memory limit %v below the request %v", lim.Memory(), req.Memory())
	}
}

func checkSecrets(t *testing.T, m *manifests, c corev1.Container) {
	t.Helper()
	fromSecret := map[string]bool{}
	for _, e := range c.Env {
		if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil && r.SecretKeyRef.Name == m.secret.Name {
			if _, ok := m.secret.StringData[r.SecretKeyRef.Key]; !ok {
				t.Errorf("%s: key %s is not in the example Secret", e.Name, r.SecretKeyRef.Key)
			}
			fromSecret[e.Name] = true
		}
	}
	for _, k := range []string{"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "MONITOR_USER", "MONITOR_PASSWORD"} {
		if !fromSecret[k] {
			t.Errorf("%s does not come from the Secret %s", k, m.secret.Name)
		}
		if _, ok := m.configMap.Data[k]; ok {
			t.Errorf("%s is in the ConfigMap", k)
		}
	}
}

// checkGrace: the pod's grace period must exceed the worker's shutdown
// timeout, twice DYPLS_TIMEOUT plus 5 s (worker.Config.ShutdownTimeout).
func checkGrace(t *testing.T, grace *int64, timeout string) {
	t.Helper()
	call := dypls.DefaultTimeout
	if timeout != "" {
		var err error
		if call, err = time.ParseDuration(timeout); err != nil {
			t.Fatalf("DYPLS_TIMEOUT %q: %v", timeout, err)
		}
	}
	shutdown := 2*call + 5*time.Second
	if grace == nil || time.Duration(*grace)*time.Second <= shutdown+5*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v: want more than the shutdown timeout %s plus 5 s", grace, shutdown)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestStrictDecoding makes sure a misspelt field fails the decoding above.
func TestStrictDecoding(t *testing.T) {
	doc := []byte("apiVersion: apps/v1\nkind: Deployment\nspec:\n  replica: 2\n")
	if err := yaml.UnmarshalStrict(doc, &appsv1.Deployment{}); err == nil {
		t.Error("a Deployment with spec.replica decodes")
	}
}
