package deploytest

import (
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// manifests is the decoded output of one kustomize build.
type manifests struct {
	deployments  []*appsv1.Deployment
	services     []*corev1.Service
	configMaps   []*corev1.ConfigMap
	secrets      []*corev1.Secret
	ingresses    []*networkingv1.Ingress
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	pdbs         []*policyv1.PodDisruptionBudget
	allResources []string // "Kind/name" of every resource
}

// strictCodecs decodes the kinds chatd's manifests may contain; strict mode turns unknown,
// misspelled (also by case) and duplicate fields into errors.
var strictCodecs = func() serializer.CodecFactory {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		appsv1.AddToScheme, corev1.AddToScheme, networkingv1.AddToScheme,
		autoscalingv2.AddToScheme, policyv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return serializer.NewCodecFactory(s, serializer.EnableStrict)
}()

// decodeStrict decodes one JSON or YAML document into its typed Kubernetes object.
func decodeStrict(doc []byte) (runtime.Object, error) {
	obj, _, err := strictCodecs.UniversalDeserializer().Decode(doc, nil, nil)
	return obj, err
}

// kustomizeBuild runs `kustomize build deploy/<dir>` in-process and decodes every resource.
func kustomizeBuild(t *testing.T, dir string) manifests {
	t.Helper()
	path := filepath.Join(repoRoot(t), "deploy", dir)
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), path)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", path, err)
	}
	var m manifests
	for _, res := range resMap.Resources() {
		doc, err := res.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		obj, err := decodeStrict(doc)
		if err != nil {
			t.Errorf("%s/%s does not decode strictly: %v", res.GetKind(), res.GetName(), err)
			continue
		}
		m.allResources = append(m.allResources, res.GetKind()+"/"+res.GetName())
		switch o := obj.(type) {
		case *appsv1.Deployment:
			m.deployments = append(m.deployments, o)
		case *corev1.Service:
			m.services = append(m.services, o)
		case *corev1.ConfigMap:
			m.configMaps = append(m.configMaps, o)
		case *corev1.Secret:
			m.secrets = append(m.secrets, o)
		case *networkingv1.Ingress:
			m.ingresses = append(m.ingresses, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			m.hpas = append(m.hpas, o)
		case *policyv1.PodDisruptionBudget:
			m.pdbs = append(m.pdbs, o)
		default:
			t.Errorf("unexpected resource %T %s", obj, res.GetName())
		}
	}
	return m
}

func (m manifests) deployment(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	for _, d := range m.deployments {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no Deployment %q in %v", name, m.allResources)
	return nil
}

func (m manifests) service(t *testing.T, name string) *corev1.Service {
	t.Helper()
	for _, s := range m.services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no Service %q in %v", name, m.allResources)
	return nil
}

// configMap returns the ConfigMap that kustomize generated from name (name-<hash>).
func (m manifests) configMap(t *testing.T, name string) *corev1.ConfigMap {
	t.Helper()
	for _, c := range m.configMaps {
		if c.Name == name || strings.HasPrefix(c.Name, name+"-") {
			return c
		}
	}
	t.Fatalf("no ConfigMap %q in %v", name, m.allResources)
	return nil
}

func (m manifests) secret(t *testing.T, name string) *corev1.Secret {
	t.Helper()
	for _, s := range m.secrets {
		if s.Name == name || strings.HasPrefix(s.Name, name+"-") {
			return s
		}
	}
	t.Fatalf("no Secret %q in %v", name, m.allResources)
	return nil
}

// chatdContainer is the container named chatd of the chatd Deployment.
func chatdContainer(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "chatd" {
			return c
		}
	}
	t.Fatalf("Deployment %s has no container chatd", d.Name)
	return corev1.Container{}
}

// containerPort resolves a named or numbered port of c.
func containerPort(c corev1.Container, p intstr.IntOrString) (int32, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

// The two builds: deploy/ (try-out: base + Redis) and deploy/base (what production overlays use).
var kustomizations = []string{".", "base"}

func TestKustomizeChatdDeployment(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			m := kustomizeBuild(t, dir)
			d := m.deployment(t, "chatd")
			if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
				t.Errorf("replicas = %v, want 3", d.Spec.Replicas)
			}
			c := chatdContainer(t, d)
			if c.Image == "" {
				t.Error("chatd container has no image")
			}
			if sl := d.Spec.Template.Spec.EnableServiceLinks; sl == nil || *sl {
				t.Error("enableServiceLinks is not false: the Service chatd would inject CHATD_SERVICE_HOST, CHATD_PORT, ... which chatd rejects as unknown settings")
			}
			if len(c.Args) > 0 || len(c.Command) > 0 {
				t.Errorf("chatd runs with no arguments; command %v args %v", c.Command, c.Args)
			}
			if port, ok := containerPort(c, intstr.FromString("http")); !ok || port != 3000 {
				t.Errorf("container port http = %d, want 3000", port)
			}
			for _, probe := range []struct {
				name string
				p    *corev1.Probe
				path string
			}{{"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}} {
				if probe.p == nil || probe.p.HTTPGet == nil {
					t.Errorf("%s is not an HTTP GET probe", probe.name)
					continue
				}
				if probe.p.HTTPGet.Path != probe.path {
					t.Errorf("%s path = %q, want %q", probe.name, probe.p.HTTPGet.Path, probe.path)
				}
				if port, ok := containerPort(c, probe.p.HTTPGet.Port); !ok || port != 3000 {
					t.Errorf("%s port %v is not container port 3000", probe.name, probe.p.HTTPGet.Port.String())
				}
			}
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if _, ok := c.Resources.Requests[r]; !ok {
					t.Errorf("no %s request", r)
				}
			}
			if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
				t.Error("no memory limit")
			}
		})
	}
}

// TestKustomizeGracePeriod checks that Kubernetes waits for chatd's whole drain (the
// ConfigMap's CHATD_SHUTDOWN_TIMEOUT, after the preStop pause) before it sends SIGKILL.
func TestKustomizeGracePeriod(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			m := kustomizeBuild(t, dir)
			d := m.deployment(t, "chatd")
			c := chatdContainer(t, d)
			cm := m.configMap(t, "chatd-config")
			shutdown := durationOr(t, cm.Data["CHATD_SHUTDOWN_TIMEOUT"], 30*time.Second)
			var preStop time.Duration
			if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
				if c.Lifecycle.PreStop.Sleep == nil {
					t.Fatal("preStop is not a sleep action (distroless has no shell to exec)")
				}
				preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
			}
			if d.Spec.Template.Spec.TerminationGracePeriodSeconds == nil {
				t.Fatal("terminationGracePeriodSeconds is not set (default 30s)")
			}
			grace := time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
			if grace <= shutdown+preStop {
				t.Errorf("terminationGracePeriodSeconds %v <= CHATD_SHUTDOWN_TIMEOUT %v + preStop %v", grace, shutdown, preStop)
			}
			if drain := durationOr(t, cm.Data["CHATD_SHUTDOWN_DRAIN"], 10*time.Second); drain >= shutdown {
				t.Errorf("CHATD_SHUTDOWN_DRAIN %v is not shorter than CHATD_SHUTDOWN_TIMEOUT %v", drain, shutdown)
			}
		})
	}
}

// TestKustomizeEnvironment checks where chatd's settings come from: the generated ConfigMap
// and Secret (by their hashed names), with only names chatd knows.
func TestKustomizeEnvironment(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			m := kustomizeBuild(t, dir)
			c := chatdContainer(t, m.deployment(t, "chatd"))
			cm := m.configMap(t, "chatd-config")
			sec := m.secret(t, "chatd-secrets")
			var fromCM, fromSecret bool
			for _, ef := range c.EnvFrom {
				switch {
				case ef.ConfigMapRef != nil:
					if ef.ConfigMapRef.Name != cm.Name {
						t.Errorf("envFrom ConfigMap %q, but the build has %q", ef.ConfigMapRef.Name, cm.Name)
					}
					fromCM = true
				case ef.SecretRef != nil:
					if ef.SecretRef.Name != sec.Name {
						t.Errorf("envFrom Secret %q, but the build has %q", ef.SecretRef.Name, sec.Name)
					}
					fromSecret = true
				}
				if ef.Prefix != "" {
					t.Errorf("envFrom prefix %q would rename chatd's variables", ef.Prefix)
				}
			}
			if !fromCM || !fromSecret {
				t.Errorf("envFrom = %+v, want the ConfigMap chatd-config and the Secret chatd-secrets", c.EnvFrom)
			}
			var names []string
			for k := range cm.Data {
				names = append(names, k)
			}
			for k := range sec.Data {
				names = append(names, k)
			}
			for k := range sec.StringData {
				names = append(names, k)
			}
			for _, e := range c.Env {
				names = append(names, e.Name)
			}
			if u := unknownChatdEnv(names); len(u) > 0 {
				t.Errorf("names chatd does not know: %v", u)
			}
			for _, k := range []string{"CHATD_AUTH_JWT_SECRET", "CHATD_API_TOKEN"} {
				if _, ok := sec.Data[k]; !ok {
					t.Errorf("Secret %s has no %s", sec.Name, k)
				}
				if _, ok := cm.Data[k]; ok {
					t.Errorf("secret %s is in the ConfigMap", k)
				}
			}
			if listen := cm.Data["CHATD_LISTEN"]; listen != "" && !strings.HasSuffix(listen, ":3000") {
				t.Errorf("CHATD_LISTEN = %q, but the container port and probes use 3000", listen)
			}
			if cm.Data["CHATD_LOG_FORMAT"] != "json" {
				t.Errorf("CHATD_LOG_FORMAT = %q, want json", cm.Data["CHATD_LOG_FORMAT"])
			}
			wantMode := map[string]string{".": "dev", "base": "jwt"}[dir]
			if got := cm.Data["CHATD_AUTH_MODE"]; got != wantMode {
				t.Errorf("CHATD_AUTH_MODE = %q, want %q", got, wantMode)
			}
			// Dev mode on the pod's :3000 is refused unless the try-out says
			// so; production (the base) must not.
			wantInsecure := map[string]string{".": "true", "base": ""}[dir]
			if got := cm.Data["CHATD_AUTH_DEV_INSECURE"]; got != wantInsecure {
				t.Errorf("CHATD_AUTH_DEV_INSECURE = %q, want %q", got, wantInsecure)
			}
		})
	}
}

// TestKustomizeSecurityContext checks every container of every build: non-root, read-only
// root filesystem, no privilege escalation, no capabilities, the runtime's seccomp profile.
func TestKustomizeSecurityContext(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			m := kustomizeBuild(t, dir)
			for _, d := range m.deployments {
				pod := d.Spec.Template.Spec
				psc := pod.SecurityContext
				if psc == nil {
					psc = &corev1.PodSecurityContext{}
				}
				for _, c := range pod.Containers {
					where := d.Name + "/" + c.Name
					sc := c.SecurityContext
					if sc == nil {
						t.Errorf("%s has no securityContext", where)
						continue
					}
					nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (sc.RunAsNonRoot == nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
					if !nonRoot {
						t.Errorf("%s: runAsNonRoot is not true", where)
					}
					if sc.RunAsUser != nil && *sc.RunAsUser == 0 || psc.RunAsUser != nil && *psc.RunAsUser == 0 {
						t.Errorf("%s: runs as uid 0", where)
					}
					if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
						t.Errorf("%s: readOnlyRootFilesystem is not true", where)
					}
					if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
						t.Errorf("%s: allowPrivilegeEscalation is not false", where)
					}
					if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
						t.Errorf("%s: capabilities %+v, want drop ALL and add none", where, sc.Capabilities)
					}
					seccomp := sc.SeccompProfile
					if seccomp == nil {
						seccomp = psc.SeccompProfile
					}
					if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
						t.Errorf("%s: seccompProfile %+v, want RuntimeDefault", where, seccomp)
					}
					if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
						t.Errorf("%s: no memory limit", where)
					}
				}
			}
		})
	}
}

// selects reports whether selector picks a pod with podLabels.
func selects(t *testing.T, selector *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	if selector == nil {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		t.Fatal(err)
	}
	return !sel.Empty() && sel.Matches(labels.Set(podLabels))
}

func TestKustomizeServiceIngressHPAPDB(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			m := kustomizeBuild(t, dir)
			d := m.deployment(t, "chatd")
			podLabels := d.Spec.Template.Labels
			if !selects(t, d.Spec.Selector, podLabels) {
				t.Errorf("Deployment selector %v does not match its pod labels %v", d.Spec.Selector, podLabels)
			}
			c := chatdContainer(t, d)

			svc := m.service(t, "chatd")
			if !selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, podLabels) {
				t.Errorf("Service selector %v does not match pod labels %v", svc.Spec.Selector, podLabels)
			}
			for _, other := range m.deployments {
				if other.Name != d.Name && selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, other.Spec.Template.Labels) {
					t.Errorf("Service chatd also selects the pods of %s", other.Name)
				}
			}
			for _, sp := range svc.Spec.Ports {
				if port, ok := containerPort(c, sp.TargetPort); !ok || port != 3000 {
					t.Errorf("Service port %s targets %v, not container port 3000", sp.Name, sp.TargetPort.String())
				}
			}

			if len(m.ingresses) != 1 {
				t.Fatalf("want one Ingress, have %d", len(m.ingresses))
			}
			ing := m.ingresses[0]
			var backends int
			for _, rule := range ing.Spec.Rules {
				if rule.HTTP == nil {
					continue
				}
				for _, p := range rule.HTTP.Paths {
					backends++
					b := p.Backend.Service
					if b == nil || b.Name != svc.Name {
						t.Errorf("Ingress path %s backend %+v is not Service %s", p.Path, p.Backend, svc.Name)
						continue
					}
					if !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool {
						return (b.Port.Name != "" && b.Port.Name == sp.Name) || (b.Port.Number != 0 && b.Port.Number == sp.Port)
					}) {
						t.Errorf("Ingress backend port %+v is not a port of Service %s", b.Port, svc.Name)
					}
				}
			}
			if backends == 0 {
				t.Error("Ingress has no backend")
			}
			a := ing.Annotations
			if a["nginx.ingress.kubernetes.io/affinity"] != "cookie" || a["nginx.ingress.kubernetes.io/session-cookie-name"] == "" {
				t.Errorf("Ingress lacks cookie affinity for long-polling: %v", a)
			}
			for _, k := range []string{"proxy-read-timeout", "proxy-send-timeout"} {
				v, err := strconv.Atoi(a["nginx.ingress.kubernetes.io/"+k])
				if err != nil || v < 60 {
					t.Errorf("Ingress %s = %q, want at least 60 seconds for WebSockets", k, a["nginx.ingress.kubernetes.io/"+k])
				}
			}

			if len(m.hpas) != 1 {
				t.Fatalf("want one HorizontalPodAutoscaler, have %d", len(m.hpas))
			}
			hpa := m.hpas[0]
			ref := hpa.Spec.ScaleTargetRef
			if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name {
				t.Errorf("HPA targets %+v, want apps/v1 Deployment %s", ref, d.Name)
			}
			if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 || hpa.Spec.MaxReplicas < *hpa.Spec.MinReplicas {
				t.Errorf("HPA replicas %v..%d, want at least 2 and max >= min", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
			}
			if !slices.ContainsFunc(hpa.Spec.Metrics, func(ms autoscalingv2.MetricSpec) bool {
				return ms.Resource != nil && ms.Resource.Name == corev1.ResourceCPU
			}) {
				t.Errorf("HPA does not scale on CPU: %+v", hpa.Spec.Metrics)
			}

			if len(m.pdbs) != 1 {
				t.Fatalf("want one PodDisruptionBudget, have %d", len(m.pdbs))
			}
			pdb := m.pdbs[0]
			if !selects(t, pdb.Spec.Selector, podLabels) {
				t.Errorf("PDB selector %v does not match pod labels %v", pdb.Spec.Selector, podLabels)
			}
			if pdb.Spec.MinAvailable == nil && pdb.Spec.MaxUnavailable == nil {
				t.Error("PDB sets neither minAvailable nor maxUnavailable")
			}
			if mu := pdb.Spec.MaxUnavailable; mu != nil && mu.Type == intstr.Int && mu.IntVal >= *d.Spec.Replicas {
				t.Errorf("PDB maxUnavailable %d lets every replica go", mu.IntVal)
			}
		})
	}
}

// TestKustomizeTryOutRedis checks that the try-out build has a Redis that CHATD_REDIS_URL
// reaches, and that the base leaves Redis out.
func TestKustomizeTryOutRedis(t *testing.T) {
	m := kustomizeBuild(t, ".")
	cm := m.configMap(t, "chatd-config")
	u, err := url.Parse(cm.Data["CHATD_REDIS_URL"])
	if err != nil || u.Scheme != "redis" {
		t.Fatalf("CHATD_REDIS_URL = %q, want a redis:// URL", cm.Data["CHATD_REDIS_URL"])
	}
	svc := m.service(t, u.Hostname())
	if !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool { return strconv.Itoa(int(sp.Port)) == u.Port() }) {
		t.Errorf("Service %s has no port %s", svc.Name, u.Port())
	}
	redis := m.deployment(t, "chatd-redis")
	if !selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, redis.Spec.Template.Labels) {
		t.Errorf("Service %s does not select the Redis pods", svc.Name)
	}

	base := kustomizeBuild(t, "base")
	for _, d := range base.deployments {
		if d.Name != "chatd" {
			t.Errorf("deploy/base has Deployment %s: Redis belongs to deploy/redis only", d.Name)
		}
	}
}

// TestStrictDecodeRejectsMistakes shows that the decoding above fails on the mistakes it is
// there to catch.
func TestStrictDecodeRejectsMistakes(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"unknown field", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{"replicas":3,"terminationGracePeriod":45}}`, "terminationGracePeriod"},
		{"wrong case", `{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"},"spec":{"sessionaffinity":"ClientIP"}}`, "sessionaffinity"},
		{"duplicate field", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  A: b\n  A: c\n", "A"},
		{"unknown kind", `{"apiVersion":"v1","kind":"Pdo","metadata":{"name":"x"}}`, "Pdo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeStrict([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("decode = %v, want an error naming %q", err, tt.want)
			}
		})
	}
}
