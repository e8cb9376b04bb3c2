package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestCIInstallsDemoPackages: CI's script (.ci/run) installs every Debian
// package `make demo` installs (the Makefile's DEMO_PKGS), so that the
// tests, which boot the same lab, find them on a fresh machine.
func TestCIInstallsDemoPackages(t *testing.T) {
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^DEMO_PKGS\s*:?=(.*)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("the Makefile has no DEMO_PKGS")
	}
	ci, err := os.ReadFile("../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	installed := map[string]bool{}
	for _, f := range strings.Fields(strings.ReplaceAll(string(ci), "\\\n", " ")) {
		installed[f] = true
	}
	for _, p := range strings.Fields(string(m[1])) {
		if !installed[p] {
			t.Errorf("DEMO_PKGS has %s; .ci/run does not install it", p)
		}
	}
}
