package batch

import (
	"fmt"
	"strings"

	"github.com/gitops-reverser/gitops-reverser/api/v1alpha1"
	"github.com/gitops-reverser/gitops-reverser/engine/change"
	"github.com/gitops-reverser/gitops-reverser/engine/transform"
)

// render turns one change into the file it writes or removes, through the
// built-in sanitizer and the default layout.
func render(c change.Change, rule v1alpha1.RuleSpec, target v1alpha1.GitTargetSpec) (fileChange, error) {
	p, err := transform.CleanPath(target.BasePath, strings.TrimPrefix(
		strings.TrimPrefix(transform.DefaultPath("", c.Resource, c.Namespace, c.Name), "/"), "/"))
	if err != nil {
		return fileChange{}, fmt.Errorf("layout of %s %s/%s: %w", c.Resource.Resource, c.Namespace, c.Name, err)
	}
	summary := fmt.Sprintf("%s %s %s", c.Operation, resourceName(c), objectName(c))
	if c.Operation == v1alpha1.OperationDelete {
		if c.Resource.Group == "" && c.Resource.Resource == "secrets" && rule.Secrets == v1alpha1.SecretSkip {
			return fileChange{}, transform.ErrSkipped
		}
		return fileChange{path: p, delete: true, summary: summary}, nil
	}
	if c.Object == nil {
		return fileChange{}, fmt.Errorf("change of %s has no object", objectName(c))
	}
	clean, err := transform.Sanitize(c.Object, transform.Options{Secrets: transform.SecretHandling(rule.Secrets)})
	if err != nil {
		return fileChange{}, fmt.Errorf("sanitizing: %w", err)
	}
	content, err := transform.Marshal(clean)
	if err != nil {
		return fileChange{}, fmt.Errorf("rendering YAML: %w", err)
	}
	return fileChange{path: p, content: content, summary: summary}, nil
}

func resourceName(c change.Change) string {
	if c.Resource.Group == "" {
		return c.Resource.Resource
	}
	return c.Resource.Resource + "." + c.Resource.Group
}

func objectName(c change.Change) string {
	if c.Namespace == "" {
		return c.Name
	}
	return c.Namespace + "/" + c.Name
}
