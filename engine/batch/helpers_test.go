package batch

import "github.com/gitops-reverser/gitops-reverser/api/v1alpha1"

func commitSpec() v1alpha1.CommitSpec {
	return v1alpha1.CommitSpec{
		AuthorEmailDomain: "corp.example",
		AuthorMap:         []v1alpha1.AuthorMapping{{Username: "alice", Name: "Alice Liddell", Email: "alice@wonderland.example"}},
	}
}
