package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/gitops-reverser/gitops-reverser/test/controlplane"
)

// helpFlag is a flag's first line in Go's flag usage output.
var helpFlag = regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)

// readmeFlag is a flag in the first column of the README's flag table.
var readmeFlag = regexp.MustCompile("`--([a-z0-9-]+)`")

// readmeFlags returns the flags in the first column of the table under
// "## Manager flags".
func readmeFlags() []string {
	GinkgoHelper()
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	Expect(err).NotTo(HaveOccurred())
	_, section, ok := strings.Cut(string(b), "\n## Manager flags\n")
	Expect(ok).To(BeTrue(), "README.md has no \"## Manager flags\" section")
	section, _, _ = strings.Cut(section, "\n## ")
	var out []string
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		for _, m := range readmeFlag.FindAllStringSubmatch(cells[1], -1) {
			out = append(out, m[1])
		}
	}
	sort.Strings(out)
	return out
}

var _ = Describe("The README's flag table", func() {
	It("lists exactly the flags `gitops-reverser --help` prints", func() {
		bin, err := controlplane.ManagerBinary()
		Expect(err).NotTo(HaveOccurred())
		// --help prints the usage and exits 0 (flag.ErrHelp).
		out, err := exec.Command(bin, "--help").CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		var help []string
		for _, m := range helpFlag.FindAllStringSubmatch(string(out), -1) {
			help = append(help, m[1])
		}
		sort.Strings(help)
		Expect(help).To(ContainElement("webhook-cert-dir"), string(out))
		Expect(readmeFlags()).To(Equal(help), "README.md's \"Manager flags\" table against --help:\n%s", out)
	})
})
