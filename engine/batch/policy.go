package batch

import (
	"context"
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/policy"
)

// policyInput builds the Rego input document of a confirmed change: the
// admission request's shape, with user "unknown" for an unattributed
// change.
func policyInput(c change.Change) (policy.Document, error) {
	in := policy.Input{
		Operation: string(c.Operation),
		UserInfo:  authenticationv1.UserInfo{Username: c.User.Username, UID: c.User.UID, Groups: c.User.Groups},
		Resource:  metav1.GroupVersionResource{Group: c.Resource.Group, Version: c.Resource.Version, Resource: c.Resource.Resource},
		Namespace: c.Namespace,
		Name:      c.Name,
	}
	if c.User.IsUnknown() {
		in.UserInfo.Username = policy.UnknownUser
	}
	if len(c.User.Extra) > 0 {
		in.UserInfo.Extra = map[string]authenticationv1.ExtraValue{}
		for k, v := range c.User.Extra {
			in.UserInfo.Extra[k] = v
		}
	}
	if c.Object != nil {
		gvk := c.Object.GroupVersionKind()
		in.Kind = metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind}
		if c.Operation == v1alpha1.OperationDelete {
			in.OldObject = c.Object.Object
		} else {
			in.Object = c.Object.Object
		}
	}
	if c.OldObject != nil {
		in.OldObject = c.OldObject.Object
	}
	doc, err := policy.NewDocument(&in)
	if err != nil {
		return policy.Document{}, fmt.Errorf("building the policy input of %s: %w", objectName(c), err)
	}
	return doc, nil
}

// policyDecider evaluates the policies of one change's rules, building the
// input document once and only if a rule has a policy.
type policyDecider struct {
	c     change.Change
	doc   policy.Document
	err   error
	built bool
}

// decide evaluates p on the change.
func (pd *policyDecider) decide(ctx context.Context, p *policy.Policy) (policy.Decision, error) {
	if !pd.built {
		pd.doc, pd.err = policyInput(pd.c)
		pd.built = true
	}
	if pd.err != nil {
		return policy.Decision{}, pd.err
	}
	d, err := p.EvalDocument(ctx, pd.doc)
	if err != nil {
		return policy.Decision{}, fmt.Errorf("evaluating the policy: %w", err)
	}
	return d, nil
}
