package repotest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readmeExample is the compiled, run example whose body the README's
// "Use it" section shows.
const readmeExample = "listener/example_readme_test.go"

// TestReadmeSnippetCompiles keeps the README's "Use it" Go block equal to
// the body of Example_readme (one tab of indentation removed), so the
// snippet users copy is the one `go test` compiles and runs.
func TestReadmeSnippetCompiles(t *testing.T) {
	body, err := exampleBody(read(t, readmeExample))
	if err != nil {
		t.Fatalf("%s: %v", readmeExample, err)
	}
	block, err := useItBlock(read(t, "README.md"))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	if block != body {
		t.Errorf("README.md \"Use it\" Go block differs from the body of Example_readme in %s; make the README block exactly:\n%s", readmeExample, body)
	}
}

// The two extractors agree on a README built from the example, and a
// one-character change is caught.
func TestReadmeSnippetExtractors(t *testing.T) {
	src := "package x\n\nfunc Example_readme() {\n\tx := 1\n\n\tif x > 0 {\n\t\tfmt.Println(x)\n\t}\n\t// Output:\n\t// 1\n}\n"
	body, err := exampleBody(src)
	if err != nil {
		t.Fatal(err)
	}
	readme := "# x\n\n## Use it\n\n```go\n" + body + "```\n\nMore.\n"
	if got, err := useItBlock(readme); err != nil || got != body {
		t.Errorf("useItBlock = %q, %v, want %q", got, err, body)
	}
	changed := strings.Replace(readme, "x := 1", "x := 2", 1)
	if got, _ := useItBlock(changed); got == body {
		t.Error("a changed README block still equals the example body")
	}
}

// useItBlock returns the first Go block of the "## Use it" section.
func useItBlock(readme string) (string, error) {
	_, section, ok := strings.Cut(readme, "\n## Use it\n")
	if !ok {
		return "", errors.New(`no "## Use it" section`)
	}
	_, block, ok := strings.Cut(section, "```go\n")
	if !ok {
		return "", errors.New(`no Go block under "Use it"`)
	}
	block, _, ok = strings.Cut(block, "```")
	if !ok {
		return "", errors.New(`the "Use it" Go block is not closed`)
	}
	return block, nil
}

// exampleBody returns the body of func Example_readme with one tab of
// indentation removed from each line, ending in a newline.
func exampleBody(src string) (string, error) {
	_, body, ok := strings.Cut(src, "func Example_readme() {\n")
	if !ok {
		return "", errors.New("no func Example_readme")
	}
	body, _, ok = strings.Cut(body, "\n}\n")
	if !ok {
		return "", errors.New("Example_readme is not closed")
	}
	lines := strings.Split(body, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "\t")
	}
	return strings.Join(lines, "\n") + "\n", nil
}

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
