package deploy

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// overlays are the kustomize overlays under k8s/overlays; each is rendered and checked.
var overlays = []string{"dev", "prod"}

// serviceMonitor is the Prometheus Operator's monitoring.coreos.com/v1 ServiceMonitor, the
// fields this deployment uses. Decoding is strict, so a field not declared here fails: add it
// here (from the operator's API reference) when the manifests start using it.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		JobLabel          string               `json:"jobLabel,omitempty"`
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector *struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		Endpoints []struct {
			Port          string `json:"port,omitempty"`
			Path          string `json:"path,omitempty"`
			Scheme        string `json:"scheme,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// newObject returns an empty object of the Go type of apiVersion and kind.
var newObject = map[string]func() any{
	"v1/Namespace":                            func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":                       func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":                            func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                               func() any { return &corev1.Secret{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                      func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                     func() any { return &appsv1.StatefulSet{} },
	"policy/v1/PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"networking.k8s.io/v1/Ingress":            func() any { return &networkingv1.Ingress{} },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return &networkingv1.NetworkPolicy{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &serviceMonitor{} },
}

// rendered is one overlay, built by kustomize and decoded into the API types.
type rendered struct {
	Overlay         string
	Namespaces      []*corev1.Namespace
	ServiceAccounts []*corev1.ServiceAccount
	ConfigMaps      []*corev1.ConfigMap
	Secrets         []*corev1.Secret
	Services        []*corev1.Service
	Deployments     []*appsv1.Deployment
	StatefulSets    []*appsv1.StatefulSet
	PDBs            []*policyv1.PodDisruptionBudget
	HPAs            []*autoscalingv2.HorizontalPodAutoscaler
	Ingresses       []*networkingv1.Ingress
	NetworkPolicies []*networkingv1.NetworkPolicy
	ServiceMonitors []*serviceMonitor
	Count           int
}

var renderCache sync.Map // overlay name → *rendered or error

// render builds k8s/overlays/<overlay> in-process with kustomize (the same library as
// `kubectl apply -k` / `kustomize build`, with its default load restrictions) and decodes
// every object strictly: an unknown or misspelt field, a duplicate field or a kind this test
// does not know fails.
func render(t *testing.T, overlay string) *rendered {
	t.Helper()
	if v, ok := renderCache.Load(overlay); ok {
		if err, isErr := v.(error); isErr {
			t.Fatal(err)
		}
		return v.(*rendered)
	}
	r, err := renderOverlay(filepath.Join(repoRoot(t), "k8s", "overlays", overlay))
	if err != nil {
		renderCache.Store(overlay, err)
		t.Fatal(err)
	}
	r.Overlay = overlay
	renderCache.Store(overlay, r)
	return r
}

func renderOverlay(dir string) (*rendered, error) {
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	r := &rendered{}
	var errs []string
	for _, res := range resMap.Resources() {
		gvk := res.GetApiVersion() + "/" + res.GetKind()
		id := fmt.Sprintf("%s %s/%s", gvk, res.GetNamespace(), res.GetName())
		mk, ok := newObject[gvk]
		if !ok {
			errs = append(errs, id+": a kind the tests do not decode; add it to newObject")
			continue
		}
		data, err := res.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		obj := mk()
		strict, err := sigsjson.UnmarshalStrict(data, obj)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", id, err))
			continue
		}
		for _, e := range strict {
			errs = append(errs, fmt.Sprintf("%s: %v", id, e))
		}
		r.Count++
		switch o := obj.(type) {
		case *corev1.Namespace:
			r.Namespaces = append(r.Namespaces, o)
		case *corev1.ServiceAccount:
			r.ServiceAccounts = append(r.ServiceAccounts, o)
		case *corev1.ConfigMap:
			r.ConfigMaps = append(r.ConfigMaps, o)
		case *corev1.Secret:
			r.Secrets = append(r.Secrets, o)
		case *corev1.Service:
			r.Services = append(r.Services, o)
		case *appsv1.Deployment:
			r.Deployments = append(r.Deployments, o)
		case *appsv1.StatefulSet:
			r.StatefulSets = append(r.StatefulSets, o)
		case *policyv1.PodDisruptionBudget:
			r.PDBs = append(r.PDBs, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			r.HPAs = append(r.HPAs, o)
		case *networkingv1.Ingress:
			r.Ingresses = append(r.Ingresses, o)
		case *networkingv1.NetworkPolicy:
			r.NetworkPolicies = append(r.NetworkPolicies, o)
		case *serviceMonitor:
			r.ServiceMonitors = append(r.ServiceMonitors, o)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s: %d objects do not decode strictly:\n  %s", dir, len(errs), strings.Join(errs, "\n  "))
	}
	return r, nil
}

// workload is a Deployment or StatefulSet: what the invariants about pods look at.
type workload struct {
	Kind, Name string
	Replicas   *int32
	Selector   *metav1.LabelSelector
	Template   corev1.PodTemplateSpec
	Claims     []corev1.PersistentVolumeClaim
}

func (r *rendered) workloads() []workload {
	var ws []workload
	for _, d := range r.Deployments {
		ws = append(ws, workload{"Deployment", d.Name, d.Spec.Replicas, d.Spec.Selector, d.Spec.Template, nil})
	}
	for _, s := range r.StatefulSets {
		ws = append(ws, workload{"StatefulSet", s.Name, s.Spec.Replicas, s.Spec.Selector, s.Spec.Template, s.Spec.VolumeClaimTemplates})
	}
	return ws
}

func (r *rendered) deployment(name string) *appsv1.Deployment {
	for _, d := range r.Deployments {
		if d.Name == name {
			return d
		}
	}
	return nil
}

func (r *rendered) service(name string) *corev1.Service {
	for _, s := range r.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// configMap finds a ConfigMap by the name a reference uses (kustomize has already rewritten
// references to the generated, hash-suffixed names).
func (r *rendered) configMap(name string) *corev1.ConfigMap {
	for _, c := range r.ConfigMaps {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// envValue resolves a literal or configMapKeyRef variable to its value; ok is false for a
// variable from elsewhere (a Secret, a field) or a dangling reference.
func (r *rendered) envValue(e corev1.EnvVar) (string, bool) {
	if e.ValueFrom == nil {
		return e.Value, true
	}
	if ref := e.ValueFrom.ConfigMapKeyRef; ref != nil {
		if cm := r.configMap(ref.Name); cm != nil {
			v, ok := cm.Data[ref.Key]
			return v, ok
		}
	}
	return "", false
}

// selects reports whether a label selector (matchLabels and matchExpressions) selects labels.
func selects(sel *metav1.LabelSelector, labels map[string]string) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false
	}
	return s.Matches(labelSet(labels))
}

type labelSet map[string]string

func (l labelSet) Has(k string) bool              { _, ok := l[k]; return ok }
func (l labelSet) Get(k string) string            { return l[k] }
func (l labelSet) Lookup(k string) (string, bool) { v, ok := l[k]; return v, ok }

// podsSelectedBy returns the workloads whose pods a selector selects.
func (r *rendered) podsSelectedBy(sel *metav1.LabelSelector) []workload {
	var out []workload
	for _, w := range r.workloads() {
		if selects(sel, w.Template.Labels) {
			out = append(out, w)
		}
	}
	return out
}

func containerPortNames(w workload) []string {
	var names []string
	for _, c := range w.Template.Spec.Containers {
		for _, p := range c.Ports {
			names = append(names, p.Name)
		}
	}
	return names
}

func servicePortNames(s *corev1.Service) []string {
	var names []string
	for _, p := range s.Spec.Ports {
		names = append(names, p.Name)
	}
	return names
}

// TestK8sRenders renders every overlay, decodes every object strictly and checks that the
// references between objects resolve: selectors select pods, named ports exist, ConfigMap
// keys exist, volume mounts have volumes, HPAs and Ingresses point at what exists.
func TestK8sRenders(t *testing.T) {
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			r := render(t, overlay)
			if r.Count < 20 {
				t.Fatalf("only %d objects rendered", r.Count)
			}
			if len(r.Namespaces) != 1 {
				t.Fatalf("%d Namespaces, want 1", len(r.Namespaces))
			}
			ns := r.Namespaces[0].Name
			checkNamespaced(t, r, ns)
			for _, w := range r.workloads() {
				if !selects(w.Selector, w.Template.Labels) {
					t.Errorf("%s %s: selector %v does not select its own pods %v", w.Kind, w.Name, w.Selector, w.Template.Labels)
				}
				checkPodReferences(t, r, w)
			}
			for _, s := range r.Services {
				ws := r.podsSelectedBy(&metav1.LabelSelector{MatchLabels: s.Spec.Selector})
				if len(ws) == 0 {
					t.Errorf("Service %s selects no pods", s.Name)
				}
				for _, p := range s.Spec.Ports {
					if p.TargetPort.StrVal == "" {
						continue
					}
					for _, w := range ws {
						if !slices.Contains(containerPortNames(w), p.TargetPort.StrVal) {
							t.Errorf("Service %s port %s targets %q, which %s %s does not name", s.Name, p.Name, p.TargetPort.StrVal, w.Kind, w.Name)
						}
					}
				}
			}
			for _, p := range r.PDBs {
				if len(r.podsSelectedBy(p.Spec.Selector)) == 0 {
					t.Errorf("PodDisruptionBudget %s selects no pods", p.Name)
				}
			}
			for _, h := range r.HPAs {
				ref := h.Spec.ScaleTargetRef
				if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || r.deployment(ref.Name) == nil {
					t.Errorf("HorizontalPodAutoscaler %s scales %s %s, which does not exist", h.Name, ref.Kind, ref.Name)
				}
				if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
					t.Errorf("HorizontalPodAutoscaler %s: min %v max %d", h.Name, h.Spec.MinReplicas, h.Spec.MaxReplicas)
				}
			}
			for _, ing := range r.Ingresses {
				for _, rule := range ing.Spec.Rules {
					for _, p := range rule.HTTP.Paths {
						b := p.Backend.Service
						s := r.service(b.Name)
						if s == nil || !slices.Contains(servicePortNames(s), b.Port.Name) {
							t.Errorf("Ingress %s path %s: backend %s port %q does not exist", ing.Name, p.Path, b.Name, b.Port.Name)
						}
					}
				}
			}
			for _, np := range r.NetworkPolicies {
				if len(np.Spec.PodSelector.MatchLabels)+len(np.Spec.PodSelector.MatchExpressions) > 0 && len(r.podsSelectedBy(&np.Spec.PodSelector)) == 0 {
					t.Errorf("NetworkPolicy %s selects no pods", np.Name)
				}
			}
			for _, sm := range r.ServiceMonitors {
				var matched int
				for _, s := range r.Services {
					if !selects(&sm.Spec.Selector, s.Labels) {
						continue
					}
					for _, e := range sm.Spec.Endpoints {
						if slices.Contains(servicePortNames(s), e.Port) {
							matched++
						}
					}
				}
				if matched == 0 {
					t.Errorf("ServiceMonitor %s scrapes no Service port", sm.Name)
				}
			}
		})
	}
}

// checkNamespaced checks that every namespaced object is in the overlay's namespace.
func checkNamespaced(t *testing.T, r *rendered, ns string) {
	t.Helper()
	var metas []metav1.ObjectMeta
	for _, o := range r.ServiceAccounts {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range r.ConfigMaps {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range r.Services {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range r.Deployments {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range r.StatefulSets {
		metas = append(metas, o.ObjectMeta)
	}
	for _, o := range r.NetworkPolicies {
		metas = append(metas, o.ObjectMeta)
	}
	for _, m := range metas {
		if m.Namespace != ns {
			t.Errorf("%s is in namespace %q, want %q", m.Name, m.Namespace, ns)
		}
	}
}

// checkPodReferences checks a pod template's mounts, ConfigMap references and service account.
func checkPodReferences(t *testing.T, r *rendered, w workload) {
	t.Helper()
	spec := w.Template.Spec
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
		if v.ConfigMap != nil && r.configMap(v.ConfigMap.Name) == nil {
			t.Errorf("%s %s: volume %s mounts ConfigMap %s, which does not exist", w.Kind, w.Name, v.Name, v.ConfigMap.Name)
		}
	}
	for _, c := range w.Claims {
		volumes[c.Name] = true
	}
	if spec.ServiceAccountName != "" && !slices.ContainsFunc(r.ServiceAccounts, func(sa *corev1.ServiceAccount) bool { return sa.Name == spec.ServiceAccountName }) {
		t.Errorf("%s %s: service account %s does not exist", w.Kind, w.Name, spec.ServiceAccountName)
	}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				t.Errorf("%s %s container %s mounts %s, which is no volume", w.Kind, w.Name, c.Name, m.Name)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
				if _, ok := r.envValue(e); !ok {
					t.Errorf("%s %s container %s: %s refers to ConfigMap %s key %s, which does not exist",
						w.Kind, w.Name, c.Name, e.Name, e.ValueFrom.ConfigMapKeyRef.Name, e.ValueFrom.ConfigMapKeyRef.Key)
				}
			}
		}
	}
}
