// Package readme runs the quick start of README.md as a newcomer would:
// it reads the command blocks that README.md marks with
// `<!-- readme-test: ... -->` comments, runs `make run` from a copy of the
// working tree (what a fresh clone holds, with bin/k8s pointing at the
// built control-plane binaries), runs the second terminal's lines with
// bash in the same folder, and checks that `git log` in the repository
// `make run` printed shows the lines README.md says it shows. README.md
// and this test cannot drift: the test has no command of its own.
//
// Markers (an HTML comment on the line before a fenced block):
//
//   - "terminal 1": started once, in the background (`make run`); the test
//     waits until it prints its "kubeconfig:" and "repository:" lines;
//   - "terminal 2": run once with bash; it must succeed; its `export`
//     lines hold for the later blocks, as in one terminal;
//   - "terminal 2, repeat until the output below": run until its output
//     holds every line of the next block;
//   - "output": the lines (trimmed) such a block's output must hold.
package readme
