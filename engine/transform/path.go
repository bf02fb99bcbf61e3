package transform

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

const (
	// ClusterScopedDir is the namespace folder of cluster-scoped objects
	// in the default layout. No namespace can have this name: namespaces
	// are DNS labels, which have no underscore.
	ClusterScopedDir = "_cluster"
	// CoreGroupDir is the group folder of the core ("") API group.
	CoreGroupDir = "core"
)

// ErrInvalidPath is returned (wrapped) by CleanPath for a path that must
// not be written. Test with errors.Is.
var ErrInvalidPath = errors.New("invalid path")

// DefaultPath is the default layout:
// {basePath}/{namespace or _cluster}/{group or core}/{resource}/{name}.yaml.
// The version is left out so that a new preferred version does not move
// every file. basePath may be empty (the repository root). Names and
// resources from the API server cannot contain a slash, so the result has
// exactly these folders; like any layout's choice it still goes through
// CleanPath before it is written.
func DefaultPath(basePath string, gvr schema.GroupVersionResource, namespace, name string) string {
	if namespace == "" {
		namespace = ClusterScopedDir
	}
	group := gvr.Group
	if group == "" {
		group = CoreGroupDir
	}
	return path.Join(basePath, namespace, group, gvr.Resource, name+".yaml")
}

// CleanPath checks and normalises p, a path relative to basePath chosen by
// a layout, and returns the repository path path.Join(basePath, p). It
// rejects, with ErrInvalidPath, an empty path, an absolute one, one that
// leaves basePath, one with a `.git` component in any letter case (which
// Git treats as its own directory on case-insensitive file systems), one
// with a backslash or a control character, and one whose file name does not
// end in `.yaml` or `.yml`. basePath is checked the same way, except that it
// may be empty and needs no extension.
func CleanPath(basePath, p string) (string, error) {
	base, err := cleanBasePath(basePath)
	if err != nil {
		return "", err
	}
	if err := checkPathText(p); err != nil {
		return "", fmt.Errorf("%w %q: %s", ErrInvalidPath, p, err.Error())
	}
	clean := path.Clean(p)
	if reason := checkRelative(clean); reason != "" {
		return "", fmt.Errorf("%w %q: %s", ErrInvalidPath, p, reason)
	}
	file := path.Base(clean)
	ext := path.Ext(file)
	if (ext != ".yaml" && ext != ".yml") || file == ext {
		return "", fmt.Errorf("%w %q: file name must end in .yaml or .yml", ErrInvalidPath, p)
	}
	return path.Join(base, clean), nil
}

func cleanBasePath(basePath string) (string, error) {
	if basePath == "" {
		return "", nil
	}
	if err := checkPathText(basePath); err != nil {
		return "", fmt.Errorf("%w: base path %q: %s", ErrInvalidPath, basePath, err.Error())
	}
	clean := path.Clean(basePath)
	if clean == "." {
		return "", nil
	}
	if reason := checkRelative(clean); reason != "" {
		return "", fmt.Errorf("%w: base path %q: %s", ErrInvalidPath, basePath, reason)
	}
	return clean, nil
}

func checkPathText(p string) error {
	if strings.TrimSpace(p) == "" {
		return errors.New("empty")
	}
	for _, r := range p {
		if r == '\\' {
			return errors.New("contains a backslash")
		}
		if r < 0x20 || r == 0x7f {
			return errors.New("contains a control character")
		}
	}
	return nil
}

// checkRelative returns why a cleaned path may not be used, or "".
func checkRelative(clean string) string {
	switch {
	case path.IsAbs(clean):
		return "absolute"
	case clean == ".":
		return "empty"
	case clean == ".." || strings.HasPrefix(clean, "../"):
		return "leaves the base path"
	}
	for _, part := range strings.Split(clean, "/") {
		if strings.EqualFold(part, ".git") {
			return "has a .git component"
		}
	}
	return ""
}
