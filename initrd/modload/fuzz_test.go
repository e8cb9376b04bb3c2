package modload

import (
	"fmt"
	"strings"
	"testing"
)

// FuzzParseAliases: any input parses or fails with an error naming a line;
// what parses prints back to the same aliases, and every alias's pattern
// matches itself when it has no special bytes.
func FuzzParseAliases(f *testing.F) {
	f.Add(testAliases)
	f.Add("alias a b\n# c\n\n")
	f.Add("alias x[ y\nalias \\* z\n")
	f.Fuzz(func(t *testing.T, in string) {
		as, err := ParseAliases(strings.NewReader(in))
		if err != nil {
			if !strings.Contains(err.Error(), "modules.alias") {
				t.Fatalf("error %q does not name modules.alias", err)
			}
			return
		}
		var b strings.Builder
		for _, a := range as {
			fmt.Fprintf(&b, "alias %s %s\n", a.Pattern, a.Module)
			if !strings.ContainsAny(a.Pattern, `*?[\`) && !Glob(a.Pattern, a.Pattern) {
				t.Fatalf("pattern %q does not match itself", a.Pattern)
			}
		}
		again, err := ParseAliases(strings.NewReader(b.String()))
		if err != nil || len(again) != len(as) {
			t.Fatalf("reparse of %q: %d aliases, %v; want %d", b.String(), len(again), err, len(as))
		}
	})
}

// FuzzParseDep: any input parses or fails with an error naming a line;
// every parsed module has a module file's path.
func FuzzParseDep(f *testing.F) {
	f.Add(testDep)
	f.Add("a.ko:\n")
	f.Add("/lib/modules/x/y.ko.xz: /lib/modules/x/z.ko\n")
	f.Fuzz(func(t *testing.T, in string) {
		mods, err := ParseDep(strings.NewReader(in))
		if err != nil {
			if !strings.Contains(err.Error(), "modules.dep line") {
				t.Fatalf("error %q does not name the line", err)
			}
			return
		}
		for name, m := range mods {
			if !isModuleFile(m.Path) || Name(m.Path) != name {
				t.Fatalf("module %q at %q", name, m.Path)
			}
		}
	})
}

// FuzzGlob: Glob never panics; "*" matches anything, a pattern of plain
// bytes only itself, and an escaped string itself.
func FuzzGlob(f *testing.F) {
	f.Add("pci:v*d*sv*sd*bc01sc06i01*", "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01")
	f.Add("x[!a-c]y", "xdy")
	f.Add("[", "[")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		Glob(pattern, s)
		if !Glob("*", s) {
			t.Fatalf("* does not match %q", s)
		}
		var esc strings.Builder
		for i := 0; i < len(s); i++ {
			esc.WriteByte('\\')
			esc.WriteByte(s[i])
		}
		if !Glob(esc.String(), s) {
			t.Fatalf("%q does not match %q", esc.String(), s)
		}
		if !strings.ContainsAny(s, `*?[\`) && (!Glob(s, s) || !Glob("*"+s, "x"+s) || !Glob(s+"*", s+"x")) {
			t.Fatalf("%q, *%[1]s or %[1]s* does not match", s)
		}
	})
}
