package catalog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"syscall"
	"testing"
)

// Environment of TestHelperProcess.
const (
	helperEnv    = "MOOBI_CATALOG_TEST_HELPER" // "1": run as the helper
	helperRoot   = "MOOBI_CATALOG_TEST_ROOT"
	helperKernel = "MOOBI_CATALOG_TEST_KERNEL"
	helperRootfs = "MOOBI_CATALOG_TEST_ROOTFS"
	helperMods   = "MOOBI_CATALOG_TEST_MODULES"
)

// TestHelperProcess is not a test: TestCrash runs the test binary again with
// -test.run=^TestHelperProcess$ to publish version v2 (Keep 1) in a child
// process that MOOBI_CRASH_POINT makes kill itself.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("only run by TestCrash")
	}
	c, err := Open(os.Getenv(helperRoot))
	if err == nil {
		src := Sources{Kernel: os.Getenv(helperKernel), Rootfs: os.Getenv(helperRootfs), Modules: os.Getenv(helperMods)}
		_, err = c.Publish(context.Background(), "img", src, PublishOptions{Version: "v2", Keep: 1, WebSeed: "http://10.99.0.1:8080/images/img/v2/"})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

// TestCrash kills a publish of v2 over v1 at each crash point (and at none),
// then checks that the catalog, once reopened, has a whole current version:
// v1 before the switch, v2 after.
func TestCrash(t *testing.T) {
	points := append([]string{""}, CrashPoints...)
	switched := slices.Index(CrashPoints, "switched")
	for i, point := range points {
		name := point
		if name == "" {
			name = "none"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "images")
			src1 := makeSources(t, filepath.Join(dir, "src1"))
			src2 := makeSources(t, filepath.Join(dir, "src2"))
			src2.Modules = makeModTree(t, filepath.Join(dir, "src2/lib/modules"), "6.1.0-test", testMods, true)
			c, err := Open(root)
			if err != nil {
				t.Fatal(err)
			}
			m1, err := c.Publish(context.Background(), "img", src1, PublishOptions{})
			if err != nil {
				t.Fatal(err)
			}

			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), helperEnv+"=1", "MOOBI_CRASH_POINT="+point, helperRoot+"="+root,
				helperKernel+"="+src2.Kernel, helperRootfs+"="+src2.Rootfs, helperMods+"="+src2.Modules)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			switch {
			case point == "":
				if err != nil {
					t.Fatalf("helper without a crash point: %v\n%s", err, out)
				}
			case !errors.As(err, &ee):
				t.Fatalf("helper: %v, want death by SIGKILL\n%s", err, out)
			default:
				if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
					t.Fatalf("helper: %v, want death by SIGKILL\n%s", err, out)
				}
			}

			c, err = Open(root)
			if err != nil {
				t.Fatal(err)
			}
			if dots := dotEntries(t, filepath.Join(root, "img")); dots != nil {
				t.Errorf("after Open: %q", dots)
			}
			wantCur, wantSrc, wantVersions := "v1", src1, []string{"v1"}
			switch {
			case point == "" || point == "pruned":
				wantCur, wantSrc, wantVersions = "v2", src2, []string{"v2"}
			case i-1 >= switched:
				wantCur, wantSrc, wantVersions = "v2", src2, []string{"v1", "v2"}
			case i-1 > slices.Index(CrashPoints, "manifest"): // renamed, not switched
				wantVersions = []string{"v1", "v2"}
			}
			m := checkVersion(t, c, "img", Current)
			if m.Version != wantCur {
				t.Fatalf("current is %s, want %s", m.Version, wantCur)
			}
			if m.Files[FileRootfs] != fileSum(t, wantSrc.Rootfs) || m.Files[FileKernel] != fileSum(t, wantSrc.Kernel) {
				t.Errorf("current %s does not hold the sources published as %s", m.Version, wantCur)
			}
			if wantCur == "v1" && !reflect.DeepEqual(m, m1) {
				t.Errorf("v1's manifest changed: %+v, was %+v", m, m1)
			}
			if got := versionNames(t, c, "img"); !reflect.DeepEqual(got, wantVersions) {
				t.Errorf("versions %q, want %q", got, wantVersions)
			}
			for _, v := range wantVersions {
				checkVersion(t, c, "img", v)
			}

			// The catalog is usable: the next publish works and is current.
			m3, err := c.Publish(context.Background(), "img", src1, PublishOptions{})
			if err != nil {
				t.Fatal(err)
			}
			next := "v2"
			if slices.Contains(wantVersions, "v2") {
				next = "v3"
			}
			if m := checkVersion(t, c, "img", Current); m.Version != m3.Version || m3.Version != next {
				t.Errorf("after the crash, published %s, current %s; want %s", m3.Version, m.Version, next)
			}
		})
	}
}
