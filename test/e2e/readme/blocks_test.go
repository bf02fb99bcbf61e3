package readme

import (
	"strings"
	"testing"
)

func TestReadBlocks_markersAndErrors(t *testing.T) {
	fence := "```"
	tests := []struct {
		name    string
		readme  string
		want    []string // marker=text
		wantErr string
	}{
		{
			name: "marked blocks in order, unmarked ones skipped",
			readme: strings.Join([]string{
				"# x", "<!-- readme-test: terminal 1 -->", fence + "sh", "make run", fence,
				fence + "sh", "not marked", fence,
				"<!-- readme-test: terminal 2 -->", fence + "sh", "a", "b", fence,
			}, "\n"),
			want: []string{"terminal 1=make run", "terminal 2=a\nb"},
		},
		{name: "unknown marker", readme: "<!-- readme-test: terminal 3 -->\n" + fence + "\nx\n" + fence, wantErr: "unknown readme-test marker"},
		{name: "marker without a block", readme: "<!-- readme-test: output -->\ntext", wantErr: "must be followed by a fenced block"},
		{name: "unterminated block", readme: "<!-- readme-test: output -->\n" + fence + "\nx", wantErr: "unterminated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readBlocks(tt.readme)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("readBlocks error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("readBlocks: %v", err)
			}
			var have []string
			for _, b := range got {
				have = append(have, b.marker+"="+b.text)
			}
			if strings.Join(have, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("readBlocks = %q, want %q", have, tt.want)
			}
		})
	}
}
