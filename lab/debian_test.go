package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDebianRecipeDocumented: the recipe operators read in docs/images.md
// is the one the tests and the demo boot.
func TestDebianRecipeDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "images.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	for _, want := range []string{
		"--variant=minbase",
		"--include=" + strings.Join(DebianPackages, ","),
		"--customize-hook='" + DebianCustomizeHook + "'",
		DebianSuite,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("docs/images.md lacks %q of the recipe lab.DebianRecipe runs", want)
		}
	}
}
