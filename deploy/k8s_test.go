package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The invariants of docs/adr/0007-deployment.md, checked on every overlay.

func forEachOverlay(t *testing.T, f func(t *testing.T, r *rendered)) {
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) { f(t, render(t, overlay)) })
	}
}

// Every container has probes, requests and limits for CPU and memory, runs as non-root on
// a read-only root filesystem without privilege escalation, and has a pinned image.
func TestK8sContainers(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, r *rendered) {
		for _, w := range r.workloads() {
			pod := w.Template.Spec
			if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
				t.Errorf("%s %s mounts a service account token; no service talks to the API server", w.Kind, w.Name)
			}
			podNonRoot := pod.SecurityContext != nil && pod.SecurityContext.RunAsNonRoot != nil && *pod.SecurityContext.RunAsNonRoot
			for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
				where := fmt.Sprintf("%s %s container %s", w.Kind, w.Name, c.Name)
				if c.ReadinessProbe == nil || c.LivenessProbe == nil {
					t.Errorf("%s: readiness %v, liveness %v: want both probes", where, c.ReadinessProbe != nil, c.LivenessProbe != nil)
				}
				for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					req, okReq := c.Resources.Requests[res]
					lim, okLim := c.Resources.Limits[res]
					if !okReq || !okLim {
						t.Errorf("%s: %s request %v limit %v: want both", where, res, okReq, okLim)
					} else if req.Cmp(lim) > 0 {
						t.Errorf("%s: %s request %s above its limit %s", where, res, req.String(), lim.String())
					}
				}
				sc := c.SecurityContext
				if sc == nil {
					t.Errorf("%s: no securityContext", where)
					continue
				}
				if !podNonRoot && (sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot) {
					t.Errorf("%s: runAsNonRoot is not set", where)
				}
				if sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot {
					t.Errorf("%s: runAsNonRoot: false", where)
				}
				if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
					t.Errorf("%s: root filesystem is writable", where)
				}
				if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Errorf("%s: allowPrivilegeEscalation is not false", where)
				}
				if sc.Privileged != nil && *sc.Privileged {
					t.Errorf("%s: privileged", where)
				}
				if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
					t.Errorf("%s: capabilities %v: want drop ALL, add none", where, sc.Capabilities)
				}
				if uid := runAsUser(pod.SecurityContext, sc); uid == nil || *uid == 0 {
					t.Errorf("%s: runs as user %v; want a numeric non-root uid (runAsNonRoot needs one to check)", where, uid)
				}
				name, tag, _ := strings.Cut(c.Image[strings.LastIndex(c.Image, "/")+1:], ":")
				if tag == "" || tag == "latest" {
					t.Errorf("%s: image %s (%s) has no pinned tag", where, c.Image, name)
				}
			}
		}
	})
}

func fmtReplicas(n *int32) string {
	if n == nil {
		return "unset"
	}
	return strconv.Itoa(int(*n))
}

func runAsUser(pod *corev1.PodSecurityContext, c *corev1.SecurityContext) *int64 {
	if c != nil && c.RunAsUser != nil {
		return c.RunAsUser
	}
	if pod != nil {
		return pod.RunAsUser
	}
	return nil
}

// NATS: a StatefulSet of 3 with required anti-affinity, persistent volumes, routes over the
// headless Service, and the same nats-server.conf as compose.
func TestK8sNATS(t *testing.T) {
	conf, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "nats", "nats-server.conf"))
	if err != nil {
		t.Fatal(err)
	}
	wantImage := "nats:" + strings.TrimPrefix(goModVersion(t, "github.com/nats-io/nats-server/v2"), "v") + "-alpine"
	forEachOverlay(t, func(t *testing.T, r *rendered) {
		if len(r.StatefulSets) != 1 || r.StatefulSets[0].Name != "nats" {
			t.Fatalf("want one StatefulSet, nats; have %d", len(r.StatefulSets))
		}
		ss := r.StatefulSets[0]
		if ss.Spec.Replicas == nil || *ss.Spec.Replicas != natsNodes {
			t.Errorf("nats replicas %s, want %d", fmtReplicas(ss.Spec.Replicas), natsNodes)
		}
		pod := ss.Spec.Template
		aff := pod.Spec.Affinity
		if aff == nil || aff.PodAntiAffinity == nil {
			t.Fatal("nats has no pod anti-affinity")
		}
		anti := false
		for _, term := range aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			if term.TopologyKey == "kubernetes.io/hostname" && selects(term.LabelSelector, pod.Labels) {
				anti = true
			}
		}
		if !anti {
			t.Error("nats: no required anti-affinity on kubernetes.io/hostname against its own pods")
		}
		headless := r.service(ss.Spec.ServiceName)
		if headless == nil || headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses {
			t.Fatalf("nats serviceName %q: want a headless Service (clusterIP None) that publishes not-ready pods", ss.Spec.ServiceName)
		}
		if !slices.ContainsFunc(headless.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == 6222 }) {
			t.Errorf("headless Service %s has no cluster port 6222", headless.Name)
		}
		if len(ss.Spec.VolumeClaimTemplates) != 1 {
			t.Fatalf("nats has %d volume claim templates, want 1", len(ss.Spec.VolumeClaimTemplates))
		}
		claim := ss.Spec.VolumeClaimTemplates[0]
		if size := claim.Spec.Resources.Requests[corev1.ResourceStorage]; size.Cmp(resource.MustParse("1Gi")) < 0 {
			t.Errorf("nats volume %s requests %s", claim.Name, size.String())
		}
		var nats *corev1.Container
		for i := range pod.Spec.Containers {
			if pod.Spec.Containers[i].Name == "nats" {
				nats = &pod.Spec.Containers[i]
			}
		}
		if nats == nil {
			t.Fatal("nats pod has no container nats")
		}
		if nats.Image != wantImage {
			t.Errorf("nats image %s, want %s (the nats-server of go.mod, which the tests run)", nats.Image, wantImage)
		}
		env := map[string]corev1.EnvVar{}
		for _, e := range nats.Env {
			env[e.Name] = e
		}
		var routes []string
		for i := range natsNodes {
			routes = append(routes, fmt.Sprintf("nats://%s-%d.%s:6222", ss.Name, i, headless.Name))
		}
		if got, want := env["NATS_ROUTES"].Value, "["+strings.Join(routes, ", ")+"]"; got != want {
			t.Errorf("NATS_ROUTES %q, want %q", got, want)
		}
		if f := env["NATS_SERVER_NAME"].ValueFrom; f == nil || f.FieldRef == nil || f.FieldRef.FieldPath != "metadata.name" {
			t.Error("NATS_SERVER_NAME is not the pod's name")
		}
		if got := env["NATS_STORE_DIR"].Value; !slices.ContainsFunc(nats.VolumeMounts, func(m corev1.VolumeMount) bool {
			return m.Name == claim.Name && m.MountPath == got
		}) {
			t.Errorf("NATS_STORE_DIR %q is not where volume %s is mounted", got, claim.Name)
		}
		var cmName string
		for _, v := range pod.Spec.Volumes {
			if v.ConfigMap != nil {
				cmName = v.ConfigMap.Name
			}
		}
		cm := r.configMap(cmName)
		if cm == nil || cm.Data["nats-server.conf"] != string(conf) {
			t.Error("the nats ConfigMap's nats-server.conf differs from deploy/nats/nats-server.conf: copy it to k8s/base/nats-server.conf")
		}
		if !slices.Equal(nats.Args, []string{"-c", "/etc/nats/nats-server.conf"}) ||
			!slices.ContainsFunc(nats.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/etc/nats" }) {
			t.Errorf("nats args %q: want the config file mounted at /etc/nats", nats.Args)
		}
	})
}

// The Palimpsest services: one Deployment each with the subcommand and environment of
// wiring_test.go, credentials only from Secrets, JSON logs, NATS through its Service.
func TestK8sPalimpsestServices(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, r *rendered) {
		image := ""
		for _, want := range services {
			d := r.deployment(want.Name)
			if d == nil {
				t.Errorf("no Deployment %s", want.Name)
				continue
			}
			if len(d.Spec.Template.Spec.Containers) != 1 {
				t.Errorf("Deployment %s has %d containers, want 1", want.Name, len(d.Spec.Template.Spec.Containers))
				continue
			}
			c := d.Spec.Template.Spec.Containers[0]
			where := "Deployment " + want.Name
			if image == "" {
				image = c.Image
			} else if c.Image != image {
				t.Errorf("%s: image %s; every service runs the one image %s", where, c.Image, image)
			}
			if len(c.Command) > 0 || !slices.Equal(c.Args, want.Args) {
				t.Errorf("%s: command %q args %q, want the image's entrypoint with args %q", where, c.Command, c.Args, want.Args)
			}
			var names []string
			for _, e := range c.Env {
				names = append(names, e.Name)
			}
			for _, p := range want.checkEnv(names) {
				t.Errorf("%s: environment: %s", where, p)
			}
			for _, e := range c.Env {
				v, literal := r.envValue(e)
				switch {
				case slices.Contains(secretEnv, e.Name):
					if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
						t.Errorf("%s: %s is not from a Secret (secretKeyRef)", where, e.Name)
					}
				case e.Name == envNATS:
					checkNATSURL(t, r, where, v)
				case e.Name == envLogFormat && v != "json":
					t.Errorf("%s: %s=%q, want json", where, envLogFormat, v)
				case e.Name == want.AddrEnv && v != fmt.Sprintf(":%d", httpPort):
					t.Errorf("%s: %s=%q, want :%d", where, e.Name, v, httpPort)
				}
				if literal && credentialURL.MatchString(v) {
					t.Errorf("%s: %s holds a credential in the manifest; take it from a Secret", where, e.Name)
				}
			}
			port := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "http" && p.ContainerPort == httpPort })
			if port < 0 {
				t.Errorf("%s: no container port http %d", where, httpPort)
			}
			for probe, path := range map[*corev1.Probe]string{c.ReadinessProbe: want.Ready, c.LivenessProbe: want.Live} {
				if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || probe.HTTPGet.Port.StrVal != "http" {
					t.Errorf("%s: probe %v, want GET %s on port http", where, probe, path)
				}
			}
			ann := d.Spec.Template.Annotations
			if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(httpPort) || ann["prometheus.io/path"] != "/metrics" {
				t.Errorf("%s: prometheus.io annotations %v", where, ann)
			}
			s := r.service(want.Name)
			if s == nil || !selects(&metav1.LabelSelector{MatchLabels: s.Spec.Selector}, d.Spec.Template.Labels) {
				t.Errorf("%s: no Service %s selecting its pods", where, want.Name)
			}
		}
	})
}

var credentialURL = regexp.MustCompile(`://[^/@\s]+:[^/@\s]+@`)

// checkNATSURL checks that a PALIMPSEST_NATS value names the NATS client Service.
func checkNATSURL(t *testing.T, r *rendered, where, url string) {
	t.Helper()
	for _, u := range strings.Split(url, ",") {
		host, port, ok := strings.Cut(strings.TrimPrefix(u, "nats://"), ":")
		s := r.service(host)
		if !ok || s == nil || port != "4222" || !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == 4222 }) ||
			len(r.podsSelectedBy(&metav1.LabelSelector{MatchLabels: s.Spec.Selector})) == 0 {
			t.Errorf("%s: %s=%q does not name the NATS client Service on port 4222", where, envNATS, url)
		}
	}
}

// No Secret objects: credentials are created out of band and only referenced.
func TestK8sNoInlineSecrets(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, r *rendered) {
		for _, s := range r.Secrets {
			t.Errorf("Secret %s is in the manifests (%d keys): create it out of band and reference it", s.Name, len(s.Data)+len(s.StringData))
		}
		for _, cm := range r.ConfigMaps {
			for k, v := range cm.Data {
				if credentialURL.MatchString(v) || regexp.MustCompile(`(?i)(password|secret|token)\s*[:=]\s*\S`).MatchString(v) {
					t.Errorf("ConfigMap %s key %s looks like it holds a credential", cm.Name, k)
				}
			}
		}
		for _, w := range r.workloads() {
			for _, c := range w.Template.Spec.Containers {
				for _, e := range c.Env {
					if e.ValueFrom == nil && regexp.MustCompile(`(?i)(PASSWORD|SECRET|TOKEN|_KEY)`).MatchString(e.Name) {
						t.Errorf("%s %s container %s: %s has a literal value", w.Kind, w.Name, c.Name, e.Name)
					}
				}
			}
		}
	})
}

// PodDisruptionBudgets for every workload; HPAs for the gateway and the read API.
func TestK8sAvailability(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, r *rendered) {
		for _, w := range r.workloads() {
			var n int
			for _, p := range r.PDBs {
				if selects(p.Spec.Selector, w.Template.Labels) {
					n++
					if p.Spec.MaxUnavailable == nil || p.Spec.MaxUnavailable.IntValue() != 1 {
						t.Errorf("PodDisruptionBudget %s: maxUnavailable %v, want 1 (a drain can always proceed, one pod at a time)", p.Name, p.Spec.MaxUnavailable)
					}
				}
			}
			if n != 1 {
				t.Errorf("%s %s is covered by %d PodDisruptionBudgets, want 1", w.Kind, w.Name, n)
			}
		}
		for _, name := range []string{"gateway", "read"} {
			i := slices.IndexFunc(r.HPAs, func(h *autoscalingv2.HorizontalPodAutoscaler) bool { return h.Spec.ScaleTargetRef.Name == name })
			if i < 0 {
				t.Errorf("no HorizontalPodAutoscaler for %s", name)
				continue
			}
			if len(r.HPAs[i].Spec.Metrics) == 0 {
				t.Errorf("HorizontalPodAutoscaler %s has no metrics", r.HPAs[i].Name)
			}
		}
	})
}

// NetworkPolicies: default deny in and out; from outside the namespace only the ingress
// controller (to the gateway and read API) and Prometheus (metrics ports) get in.
func TestK8sNetworkPolicies(t *testing.T) {
	public := map[string]bool{}
	for _, s := range services {
		public[s.Name] = s.Public
	}
	forEachOverlay(t, func(t *testing.T, r *rendered) {
		deny := slices.ContainsFunc(r.NetworkPolicies, func(np *networkingv1.NetworkPolicy) bool {
			s := np.Spec
			return len(s.PodSelector.MatchLabels)+len(s.PodSelector.MatchExpressions) == 0 &&
				slices.Contains(s.PolicyTypes, networkingv1.PolicyTypeIngress) && slices.Contains(s.PolicyTypes, networkingv1.PolicyTypeEgress) &&
				len(s.Ingress) == 0 && len(s.Egress) == 0
		})
		if !deny {
			t.Error("no default-deny NetworkPolicy (empty podSelector, Ingress and Egress, no rules)")
		}
		for _, np := range r.NetworkPolicies {
			pods := r.podsSelectedBy(&np.Spec.PodSelector)
			for _, rule := range np.Spec.Ingress {
				if len(rule.From) == 0 {
					t.Errorf("NetworkPolicy %s admits traffic from anywhere", np.Name)
				}
				if len(rule.Ports) == 0 {
					t.Errorf("NetworkPolicy %s admits every port", np.Name)
				}
				for _, peer := range rule.From {
					if peer.IPBlock != nil {
						t.Errorf("NetworkPolicy %s admits an IP block %s", np.Name, peer.IPBlock.CIDR)
					}
					if peer.NamespaceSelector == nil {
						continue // pods of this namespace
					}
					from := peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]
					switch from {
					case "monitoring":
						for _, p := range rule.Ports {
							if p.Port == nil || (p.Port.IntValue() != httpPort && p.Port.IntValue() != 7777) {
								t.Errorf("NetworkPolicy %s lets monitoring reach port %v, not a metrics port", np.Name, p.Port)
							}
						}
					case "ingress-nginx":
						for _, w := range pods {
							if !public[w.Name] {
								t.Errorf("NetworkPolicy %s lets the ingress controller reach %s %s, which is internal", np.Name, w.Kind, w.Name)
							}
						}
					default:
						t.Errorf("NetworkPolicy %s admits namespace selector %v", np.Name, peer.NamespaceSelector)
					}
				}
			}
		}
		// The Ingress routes only to public services.
		for _, ing := range r.Ingresses {
			for _, rule := range ing.Spec.Rules {
				for _, p := range rule.HTTP.Paths {
					if !public[p.Backend.Service.Name] {
						t.Errorf("Ingress %s routes %s to %s, which is internal", ing.Name, p.Path, p.Backend.Service.Name)
					}
				}
			}
		}
		// Every public service is reachable from the ingress controller.
		for name, pub := range public {
			if !pub {
				continue
			}
			ok := slices.ContainsFunc(r.NetworkPolicies, func(np *networkingv1.NetworkPolicy) bool {
				if !slices.ContainsFunc(r.podsSelectedBy(&np.Spec.PodSelector), func(w workload) bool { return w.Name == name }) {
					return false
				}
				return slices.ContainsFunc(np.Spec.Ingress, func(rule networkingv1.NetworkPolicyIngressRule) bool {
					return slices.ContainsFunc(rule.From, func(p networkingv1.NetworkPolicyPeer) bool {
						return p.NamespaceSelector != nil && p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == "ingress-nginx"
					})
				})
			})
			if !ok {
				t.Errorf("%s is public but no NetworkPolicy admits the ingress controller to it", name)
			}
		}
	})
}

// The Ingress keeps WebSockets open and a browser on one gateway replica; Prometheus
// scrapes every service's /metrics.
func TestK8sIngressAndMonitoring(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, r *rendered) {
		var gw *networkingv1.Ingress
		for _, ing := range r.Ingresses {
			for _, rule := range ing.Spec.Rules {
				for _, p := range rule.HTTP.Paths {
					if p.Backend.Service.Name == "gateway" && p.Path == "/" {
						gw = ing
					}
				}
			}
		}
		if gw == nil {
			t.Fatal("no Ingress routes / to the gateway")
		}
		a := gw.Annotations
		if a["nginx.ingress.kubernetes.io/affinity"] != "cookie" {
			t.Errorf("gateway Ingress: affinity %q, want cookie", a["nginx.ingress.kubernetes.io/affinity"])
		}
		for _, k := range []string{"nginx.ingress.kubernetes.io/proxy-read-timeout", "nginx.ingress.kubernetes.io/proxy-send-timeout"} {
			if n, err := strconv.Atoi(a[k]); err != nil || n < 3600 {
				t.Errorf("gateway Ingress: %s=%q, want ≥ 3600 s for idle WebSockets", k, a[k])
			}
		}
		checkInternalPathsDenied(t, r)
		for _, want := range services {
			s := r.service(want.Name)
			if s == nil {
				continue
			}
			ok := slices.ContainsFunc(r.ServiceMonitors, func(sm *serviceMonitor) bool {
				if !selects(&sm.Spec.Selector, s.Labels) {
					return false
				}
				for _, e := range sm.Spec.Endpoints {
					if e.Path == "/metrics" && slices.Contains(servicePortNames(s), e.Port) {
						return true
					}
				}
				return false
			})
			if !ok {
				t.Errorf("no ServiceMonitor scrapes /metrics of Service %s", want.Name)
			}
		}
		if !slices.ContainsFunc(r.ServiceMonitors, func(sm *serviceMonitor) bool {
			return sm.Spec.Selector.MatchLabels["app.kubernetes.io/name"] == "nats"
		}) {
			t.Error("no ServiceMonitor for the NATS exporter")
		}
	})
}

// checkInternalPathsDenied checks that a service's probe and metrics paths are not published:
// wherever an Ingress routes a prefix that covers them, an Ingress of the same host has the
// exact path with every client address denied (ingress-nginx prefers the exact path).
func checkInternalPathsDenied(t *testing.T, r *rendered) {
	t.Helper()
	denied := map[string]bool{} // host + path
	for _, ing := range r.Ingresses {
		ranges := strings.Split(ing.Annotations["nginx.ingress.kubernetes.io/denylist-source-range"], ",")
		if !slices.Contains(ranges, "0.0.0.0/0") || !slices.Contains(ranges, "::/0") {
			continue
		}
		for _, rule := range ing.Spec.Rules {
			for _, p := range rule.HTTP.Paths {
				if p.PathType != nil && *p.PathType == networkingv1.PathTypeExact {
					denied[rule.Host+p.Path] = true
				}
			}
		}
	}
	for _, ing := range r.Ingresses {
		for _, rule := range ing.Spec.Rules {
			for _, p := range rule.HTTP.Paths {
				if denied[rule.Host+p.Path] {
					continue
				}
				for _, internal := range []string{"/metrics", "/healthz", "/readyz"} {
					covers := p.Path == internal || p.PathType != nil && *p.PathType == networkingv1.PathTypePrefix &&
						(p.Path == "/" || strings.HasPrefix(internal, strings.TrimSuffix(p.Path, "/")+"/"))
					if covers && !denied[rule.Host+internal] {
						t.Errorf("Ingress %s publishes %s%s (path %s to %s) without an exact, denied path for it",
							ing.Name, rule.Host, internal, p.Path, p.Backend.Service.Name)
					}
				}
			}
		}
	}
}
