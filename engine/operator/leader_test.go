package operator

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func pod(name string, leader bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "sys", Name: name, Labels: map[string]string{"app": "gitops-reverser"}}}
	if leader {
		p.Labels[LeaderLabel] = "true"
	}
	return p
}

func leaders(t *testing.T, c client.Client) []string {
	t.Helper()
	var list corev1.PodList
	if err := c.List(context.Background(), &list, client.InNamespace("sys")); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range list.Items {
		if p.Labels[LeaderLabel] == "true" {
			out = append(out, p.Name)
		}
		if p.Labels["app"] != "gitops-reverser" {
			t.Fatalf("pod %s lost its other labels", p.Name)
		}
	}
	return out
}

func TestPodLabeler_TakeLabel_movesTheLabel(t *testing.T) {
	tests := []struct {
		name string
		pods []*corev1.Pod
	}{
		{name: "no pod labelled", pods: []*corev1.Pod{pod("a", false), pod("b", false)}},
		{name: "a killed leader's pod keeps the label", pods: []*corev1.Pod{pod("a", false), pod("b", true)}},
		{name: "already the leader", pods: []*corev1.Pod{pod("a", true), pod("b", false)}},
		{name: "two labelled", pods: []*corev1.Pod{pod("a", false), pod("b", true), pod("c", true)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scheme := runtime.NewScheme()
			if err := corev1.AddToScheme(scheme); err != nil {
				t.Fatal(err)
			}
			b := fake.NewClientBuilder().WithScheme(scheme)
			for _, p := range tt.pods {
				b = b.WithObjects(p)
			}
			c := b.Build()
			l := &PodLabeler{Client: c, Reader: c, Pod: types.NamespacedName{Namespace: "sys", Name: "a"}, Log: logr.Discard()}
			if err := l.TakeLabel(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := leaders(t, c); len(got) != 1 || got[0] != "a" {
				t.Fatalf("labelled pods = %v, want [a]", got)
			}
		})
	}
}

func TestPodLabeler_Follower_removesOwnLabel(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(pod("a", true), pod("b", false)).Build()
	l := &PodLabeler{Client: c, Reader: c, Pod: types.NamespacedName{Namespace: "sys", Name: "a"}, Log: logr.Discard()}
	if err := l.Follower().Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := leaders(t, c); len(got) != 0 {
		t.Fatalf("labelled pods = %v, want none", got)
	}
	// A pod that is gone is no error.
	gone := &PodLabeler{Client: c, Reader: c, Pod: types.NamespacedName{Namespace: "sys", Name: "gone"}, Log: logr.Discard()}
	if err := gone.setLabel(context.Background(), "gone", false); err != nil {
		t.Fatal(err)
	}
}

// TestPodLabeler_Start_leaderLabelsAfterTheFollowerCleared: without leader
// election both runnables start at once; the label must end on the pod.
func TestPodLabeler_Start_leaderLabelsAfterTheFollowerCleared(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(pod("a", true)).Build()
	l := &PodLabeler{Client: c, Reader: c, Pod: types.NamespacedName{Namespace: "sys", Name: "a"}, Log: logr.Discard()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = l.Leader().Start(ctx)
	}()
	if err := l.Follower().Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The leader labels after the follower's removal; wait for it.
	for i := 0; ; i++ {
		if got := leaders(t, c); len(got) == 1 && got[0] == "a" {
			break
		}
		if i > 60000 { // a generous minute
			t.Fatal("the leader never labelled its pod after the follower cleared it")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}
