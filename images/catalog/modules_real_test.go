package catalog

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"moobi/lab"
)

// TestPackModulesRealTreeWithoutDep packs the lab's Debian module tree as
// dpkg -x leaves it (no modules.dep, no modules.alias: hard links to the
// lab's files, less what depmod wrote) and checks the modules.dep and
// modules.alias it generates against what depmod made for the same tree.
func TestPackModulesRealTreeWithoutDep(t *testing.T) {
	lab.RequireRoot(t, "apt-get", "dpkg", "depmod")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	src, tree := lab.UndepmoddedModules(t, ctx)
	var buf bytes.Buffer
	n, err := PackModules(ctx, &buf, tree)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(src, "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := parseModulesDep(f, filepath.Base(src))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseModulesDep(bytes.NewReader(packedFile(t, buf.Bytes(), tree, "modules.dep")), filepath.Base(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n || n == 0 {
		t.Errorf("generated modules.dep has %d modules, %d packed", len(got), n)
	}
	sorted := func(s []string) string { s = append([]string(nil), s...); sort.Strings(s); return strings.Join(s, " ") }
	for rel, deps := range got {
		if sorted(deps) != sorted(want[rel]) {
			t.Errorf("%s: generated dependencies %q, depmod's %q", rel, deps, want[rel])
		}
		// Each dependency comes before the ones it needs (modprobe loads from the end).
		for i, d := range deps {
			for _, dd := range got[d] {
				for _, earlier := range deps[:i] {
					if earlier == dd {
						t.Errorf("%s: %s listed before %s, which needs it", rel, dd, d)
					}
				}
			}
		}
	}
	// modules.alias: the packed modules' lines of depmod's, no more, no less.
	names := map[string]bool{}
	for rel := range got {
		names[moduleName(rel)] = true
	}
	aliasLines := func(b []byte) []string {
		var out []string
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "alias" && names[f[2]] {
				out = append(out, sc.Text())
			}
		}
		return out
	}
	depmodAlias, err := os.ReadFile(filepath.Join(src, "modules.alias"))
	if err != nil {
		t.Fatal(err)
	}
	gotAlias, wantAlias := aliasLines(packedFile(t, buf.Bytes(), tree, "modules.alias")), aliasLines(depmodAlias)
	if sorted(gotAlias) != sorted(wantAlias) || len(wantAlias) == 0 {
		t.Errorf("generated modules.alias has %d lines for the packed modules, depmod's %d", len(gotAlias), len(wantAlias))
	}
	t.Logf("%s without modules.dep: %d modules packed, modules.dep and modules.alias (%d aliases) generated, as depmod's", filepath.Base(src), n, len(gotAlias))
}
