package main

// The packaging files (Dockerfile, .dockerignore, dist/moobi.service) are not
// built by `go test`; these tests read them and check them against go.mod,
// the Makefile and the appliance's defaults, so that a change to one is not
// silently left out of the others.

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"moobi/inventory"
)

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dockerInstruction is one Dockerfile instruction, continuation lines joined.
type dockerInstruction struct {
	Line int    // first line
	Cmd  string // upper case: FROM, RUN, COPY, ...
	Args string
}

// dockerStage is one FROM and the instructions after it.
type dockerStage struct {
	Image, Name string
	Ins         []dockerInstruction
}

// parseDockerfile splits a Dockerfile into stages, and returns the default
// values of the ARGs before the first FROM. It knows what these tests need:
// comments, line continuations with a backslash, FROM IMAGE [AS NAME].
func parseDockerfile(text string) ([]dockerStage, map[string]string, error) {
	var stages []dockerStage
	globalArgs := map[string]string{}
	var cur strings.Builder
	start := 0
	flush := func() error {
		s := strings.TrimSpace(cur.String())
		cur.Reset()
		if s == "" {
			return nil
		}
		cmd, args, _ := strings.Cut(s, " ")
		in := dockerInstruction{Line: start, Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args)}
		if in.Cmd == "FROM" {
			f := strings.Fields(in.Args)
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				f = f[1:] // --platform=...
			}
			st := dockerStage{}
			switch {
			case len(f) == 1:
				st.Image = f[0]
			case len(f) == 3 && strings.EqualFold(f[1], "AS"):
				st.Image, st.Name = f[0], f[2]
			default:
				return fmt.Errorf("line %d: cannot read FROM %s", in.Line, in.Args)
			}
			stages = append(stages, st)
			return nil
		}
		if len(stages) == 0 {
			if in.Cmd == "ARG" { // an ARG before the first FROM
				k, v, _ := strings.Cut(in.Args, "=")
				globalArgs[k] = v
				return nil
			}
			return fmt.Errorf("line %d: %s before FROM", in.Line, in.Cmd)
		}
		last := &stages[len(stages)-1]
		last.Ins = append(last.Ins, in)
		return nil
	}
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue // a comment (or parser directive), also inside a continued instruction
		}
		if cur.Len() == 0 {
			if trimmed == "" {
				continue
			}
			start = i + 1
		}
		if body, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(trimmed)
		if err := flush(); err != nil {
			return nil, nil, err
		}
	}
	if err := flush(); err != nil {
		return nil, nil, err
	}
	return stages, globalArgs, nil
}

// runCommand is a RUN instruction's shell command, without its --mount and
// other options.
func runCommand(args string) string {
	f := strings.Fields(args)
	for len(f) > 0 && strings.HasPrefix(f[0], "--") {
		f = f[1:]
	}
	return strings.Join(f, " ")
}

// goDirective returns the go directive of go.mod ("1.26.8").
func goDirective(t *testing.T) string {
	t.Helper()
	for _, line := range strings.Split(readRepoFile(t, "go.mod"), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "go "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("go.mod has no go directive")
	return ""
}

// goVersionParts splits "1.26.8" or "1.26" into numbers.
func goVersionParts(v string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(v, ".") {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("Go version %q: %w", v, err)
		}
		out = append(out, n)
	}
	if len(out) < 2 || len(out) > 3 {
		return nil, fmt.Errorf("Go version %q: want MAJOR.MINOR[.PATCH]", v)
	}
	return out, nil
}

// checkGoImage reports whether the golang image tag (as in
// golang:1.26.8-bookworm) can build a module whose go directive is mod: the
// same major.minor, and, when the tag names a patch release, not an older
// one (the official images set GOTOOLCHAIN=local and refuse a newer go.mod).
func checkGoImage(image, mod string) error {
	m := regexp.MustCompile(`^golang:([0-9][0-9.]*)-bookworm$`).FindStringSubmatch(image)
	if m == nil {
		return fmt.Errorf("build image %q is not golang:VERSION-bookworm", image)
	}
	img, err := goVersionParts(m[1])
	if err != nil {
		return err
	}
	want, err := goVersionParts(mod)
	if err != nil {
		return err
	}
	if img[0] != want[0] || img[1] != want[1] {
		return fmt.Errorf("build image %s has Go %d.%d, go.mod says go %s", image, img[0], img[1], mod)
	}
	if len(img) == 3 && len(want) == 3 && img[2] < want[2] {
		return fmt.Errorf("build image %s is older than go.mod's go %s", image, mod)
	}
	return nil
}

func TestCheckGoImage(t *testing.T) {
	for _, tc := range []struct {
		image, mod string
		ok         bool
	}{
		{"golang:1.26-bookworm", "1.26.8", true},
		{"golang:1.26.8-bookworm", "1.26.8", true},
		{"golang:1.26.9-bookworm", "1.26.8", true},
		{"golang:1.26.7-bookworm", "1.26.8", false},
		{"golang:1.25-bookworm", "1.26.8", false},
		{"golang:1.27-bookworm", "1.26", false},
		{"golang:1.26-alpine", "1.26.8", false},
		{"golang:latest", "1.26.8", false},
	} {
		if err := checkGoImage(tc.image, tc.mod); (err == nil) != tc.ok {
			t.Errorf("checkGoImage(%q, %q) = %v, want ok=%v", tc.image, tc.mod, err, tc.ok)
		}
	}
}

// stageWorkdir is the WORKDIR in force at the end of a stage ("/" if none).
func stageWorkdir(st dockerStage) string {
	dir := "/"
	for _, in := range st.Ins {
		if in.Cmd == "WORKDIR" {
			dir = path.Join(dir, in.Args)
		}
	}
	return dir
}

// dockerfile is a parsed Dockerfile.
type dockerfile struct {
	named   map[string]dockerStage // stages by name
	runtime dockerStage            // the last stage: the image
	args    map[string]string      // default values of the ARGs before the first FROM
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	stages, args, err := parseDockerfile(readRepoFile(t, "Dockerfile"))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	if len(stages) == 0 {
		t.Fatal("Dockerfile has no FROM")
	}
	d := dockerfile{named: map[string]dockerStage{}, runtime: stages[len(stages)-1], args: args}
	for _, st := range stages {
		if st.Name != "" {
			d.named[st.Name] = st
		}
	}
	return d
}

// stage is the stage that name stands for in a default build: a stage
// that is only `FROM ${ARG} AS name` (or `FROM other AS name`) stands for
// the stage its ARG's default (or other) names.
func (d dockerfile) stage(name string) (dockerStage, error) {
	for range 8 {
		st, ok := d.named[name]
		if !ok {
			return dockerStage{}, fmt.Errorf("no stage %q", name)
		}
		from := st.Image
		if arg, ok := strings.CutPrefix(from, "${"); ok {
			arg = strings.TrimSuffix(arg, "}")
			v, ok := d.args[arg]
			if !ok {
				return dockerStage{}, fmt.Errorf("stage %s is FROM %s: no ARG %s before the first FROM", name, from, arg)
			}
			from = v
		}
		if _, isStage := d.named[from]; isStage && len(st.Ins) == 0 {
			name = from
			continue
		}
		return st, nil
	}
	return dockerStage{}, fmt.Errorf("stage %q: FROM loops", name)
}

// copies returns, for each file the runtime stage copies from another
// stage, where it comes from: the stage (in a default build) and the
// absolute path there.
func (d dockerfile) copies(t *testing.T) map[string]struct{ stage, src string } {
	t.Helper()
	out := map[string]struct{ stage, src string }{}
	for _, in := range d.runtime.Ins {
		if in.Cmd != "COPY" {
			continue
		}
		f := strings.Fields(in.Args)
		from, ok := strings.CutPrefix(f[0], "--from=")
		if !ok || len(f) < 3 {
			t.Errorf("line %d: COPY %s: the runtime stage copies only from other stages", in.Line, in.Args)
			continue
		}
		st, err := d.stage(from)
		if err != nil {
			t.Errorf("line %d: %v", in.Line, err)
			continue
		}
		srcs, dst := f[1:len(f)-1], f[len(f)-1]
		for _, src := range srcs {
			if !path.IsAbs(src) {
				src = path.Join(stageWorkdir(st), src)
			}
			to := dst
			if strings.HasSuffix(dst, "/") {
				to = path.Join(dst, path.Base(src))
			}
			out[to] = struct{ stage, src string }{st.Name, src}
		}
	}
	return out
}

func TestDockerfileBuildStage(t *testing.T) {
	build, err := readDockerfile(t).stage("build")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkGoImage(build.Image, goDirective(t)); err != nil {
		t.Error(err)
	}
	var runs []string
	for _, in := range build.Ins {
		if in.Cmd == "RUN" {
			runs = append(runs, runCommand(in.Args))
		}
	}
	// The build runs the Makefile's targets, as CI does, and nothing else
	// that could make the image's binary differ from CI's.
	if !slices.Equal(runs, []string{"make build initrd"}) {
		t.Errorf("build stage RUN commands = %q, want exactly [make build initrd]", runs)
	}
	mk := readRepoFile(t, "Makefile")
	for _, target := range []string{"build", "initrd", "bin/moobi", "bin/node-initrd.cpio.gz"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `:`).MatchString(mk) {
			t.Errorf("Makefile has no %s target", target)
		}
	}
	if !regexp.MustCompile(`(?m)^test:.*\bbuild\b.*\binitrd\b`).MatchString(mk) {
		t.Error("Makefile's test target does not depend on build and initrd")
	}
	// A bin/moobi from the build context would look up to date to make.
	ignored := strings.Fields(readRepoFile(t, ".dockerignore"))
	if !slices.ContainsFunc(ignored, func(p string) bool { return strings.Trim(p, "/") == "bin" }) {
		t.Error(".dockerignore does not exclude bin/")
	}
}

func TestDockerfileRuntimeStage(t *testing.T) {
	d := readDockerfile(t)
	rt := d.runtime
	if rt.Image != "scratch" {
		t.Errorf("runtime image %q, want scratch (the binary is static)", rt.Image)
	}
	ipxeStage, err := d.stage("ipxe")
	if err != nil {
		t.Fatal(err)
	}
	installsIPXE := false
	for _, in := range ipxeStage.Ins {
		if in.Cmd == "RUN" && regexp.MustCompile(`apt-get install .*--no-install-recommends.* ipxe( |$)`).MatchString(runCommand(in.Args)) {
			installsIPXE = true
		}
	}
	if !installsIPXE {
		t.Errorf("stage %s (ipxe by default) does not install Debian's ipxe package with --no-install-recommends", ipxeStage.Name)
	}
	// Each file must land where `moobi serve` looks for it: the key-less
	// initramfs is the base that `serve --initrd-base` keys at each start,
	// the iPXE binaries are in ipxe_dir's default. Debian's ipxe.efi is a
	// symlink to /boot/ipxe.efi, which a copy would leave dangling.
	const base = "/usr/share/moobi/node-initrd-base.cpio.gz"
	ipxe := func(name string) string { return path.Join(inventory.DefaultIPXEDir, name) }
	want := map[string]struct{ stage, src string }{
		"/usr/local/bin/moobi":            {"build", "/src/bin/moobi"},
		base:                              {"build", "/src/bin/node-initrd.cpio.gz"},
		ipxe(inventory.DefaultBIOSBinary): {ipxeStage.Name, ipxe(inventory.DefaultBIOSBinary)},
		ipxe(inventory.DefaultUEFIBinary): {ipxeStage.Name, "/boot/ipxe.efi"},
		ipxe("snponly.efi"):               {ipxeStage.Name, ipxe("snponly.efi")},
		"/usr/share/doc/ipxe/copyright":   {ipxeStage.Name, "/usr/share/doc/ipxe/copyright"},
	}
	got := d.copies(t)
	for dst, w := range want {
		if got[dst] != w {
			t.Errorf("the runtime stage copies %q from %s:%s, want from %s:%s", dst, got[dst].stage, got[dst].src, w.stage, w.src)
		}
	}
	build, err := d.stage("build")
	if err != nil {
		t.Fatal(err)
	}
	if wd := stageWorkdir(build); wd != "/src" {
		t.Errorf("build stage WORKDIR %s: make writes /src/bin/, which the runtime stage copies", wd)
	}
	var volumes []string
	var entrypoint, cmd []string
	for _, in := range rt.Ins {
		switch in.Cmd {
		case "VOLUME":
			if err := json.Unmarshal([]byte(in.Args), &volumes); err != nil {
				volumes = strings.Fields(in.Args)
			}
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(in.Args), &entrypoint); err != nil {
				t.Errorf("line %d: ENTRYPOINT is not in exec form: %v", in.Line, err)
			}
		case "CMD":
			if err := json.Unmarshal([]byte(in.Args), &cmd); err != nil {
				t.Errorf("line %d: CMD is not in exec form: %v", in.Line, err)
			}
		case "RUN":
			t.Errorf("line %d: RUN in the runtime stage, which has no shell", in.Line)
		}
	}
	for _, v := range []string{inventory.DefaultDataDir, "/etc/moobi"} {
		if !slices.Contains(volumes, v) {
			t.Errorf("VOLUME %q lacks %s", volumes, v)
		}
	}
	if !slices.Equal(entrypoint, []string{"/usr/local/bin/moobi"}) {
		t.Errorf("ENTRYPOINT %q, want [/usr/local/bin/moobi]", entrypoint)
	}
	if want := []string{"serve", "--config", "/etc/moobi/hosts.yaml", "--initrd-base", base}; !slices.Equal(cmd, want) {
		t.Errorf("CMD %q, want %q", cmd, want)
	}
}

// parseUnit reads a systemd unit file: section → key → values, in order (a
// key may be given more than once).
func parseUnit(text string) map[string]map[string][]string {
	out := map[string]map[string][]string{}
	section := ""
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if out[section] == nil {
				out[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if ok && section != "" {
				k = strings.TrimSpace(k)
				out[section][k] = append(out[section][k], strings.TrimSpace(v))
			}
		}
	}
	return out
}

// unitBool reads a systemd boolean.
func unitBool(v string) bool {
	switch strings.ToLower(v) {
	case "1", "yes", "y", "true", "t", "on":
		return true
	}
	return false
}

// unitSeconds reads a systemd time span such as 30, 30s, 1min or 1min 30s.
func unitSeconds(v string) (time.Duration, error) {
	units := map[string]time.Duration{"": time.Second, "s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
		"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute, "ms": time.Millisecond, "msec": time.Millisecond}
	re := regexp.MustCompile(`^([0-9]+)\s*([a-z]*)$`)
	var total time.Duration
	for _, part := range regexp.MustCompile(`[0-9]+\s*[a-z]*`).FindAllString(v, -1) {
		m := re.FindStringSubmatch(strings.TrimSpace(part))
		u, ok := units[m[2]]
		if !ok {
			return 0, fmt.Errorf("time span %q: unit %q", v, m[2])
		}
		n, _ := strconv.Atoi(m[1])
		total += time.Duration(n) * u
	}
	if total == 0 && strings.TrimSpace(v) != "0" {
		return 0, fmt.Errorf("time span %q", v)
	}
	return total, nil
}

func TestUnitSeconds(t *testing.T) {
	for v, want := range map[string]time.Duration{"30": 30 * time.Second, "30s": 30 * time.Second, "1min": time.Minute, "1min 30s": 90 * time.Second, "500ms": 500 * time.Millisecond} {
		if got, err := unitSeconds(v); err != nil || got != want {
			t.Errorf("unitSeconds(%q) = %v, %v; want %v", v, got, err, want)
		}
	}
	for _, v := range []string{"", "soon", "5 fortnights"} {
		if _, err := unitSeconds(v); err == nil {
			t.Errorf("unitSeconds(%q) did not fail", v)
		}
	}
}

// httpDrain is how long `moobi serve` lets HTTP transfers finish on SIGTERM
// (httpd.Server.Serve).
const httpDrain = 10 * time.Second

func TestSystemdUnit(t *testing.T) {
	unit := parseUnit(readRepoFile(t, "dist/moobi.service"))
	svc := unit["Service"]
	if svc == nil {
		t.Fatal("dist/moobi.service has no [Service] section")
	}
	one := func(k string) string {
		v := svc[k]
		if len(v) == 0 {
			return ""
		}
		return v[len(v)-1] // the last assignment wins
	}
	// words joins every assignment of a list setting such as
	// CapabilityBoundingSet= (an empty assignment resets the list).
	words := func(k string) []string {
		var out []string
		for _, v := range svc[k] {
			if v == "" {
				out = nil
			}
			out = append(out, strings.Fields(v)...)
		}
		return out
	}
	caps := words("CapabilityBoundingSet")
	allowedCaps := []string{"CAP_NET_BIND_SERVICE"}

	for _, tc := range []struct {
		what string
		err  func() string
	}{
		{"ExecStart runs moobi serve --config FILE --initrd-base FILE", func() string {
			f := strings.Fields(one("ExecStart"))
			if len(f) != 6 || !path.IsAbs(f[0]) || path.Base(f[0]) != "moobi" || f[1] != "serve" || f[2] != "--config" || !strings.HasSuffix(f[3], ".yaml") ||
				f[4] != "--initrd-base" || !path.IsAbs(f[5]) {
				return fmt.Sprintf("ExecStart=%s", one("ExecStart"))
			}
			return ""
		}},
		{"NoNewPrivileges", func() string {
			if !unitBool(one("NoNewPrivileges")) {
				return fmt.Sprintf("NoNewPrivileges=%s, want yes", one("NoNewPrivileges"))
			}
			return ""
		}},
		{"CapabilityBoundingSet holds CAP_NET_BIND_SERVICE and nothing else", func() string {
			if !slices.Contains(caps, "CAP_NET_BIND_SERVICE") {
				return fmt.Sprintf("CapabilityBoundingSet=%s lacks CAP_NET_BIND_SERVICE", strings.Join(caps, " "))
			}
			for _, c := range caps {
				if strings.HasPrefix(c, "~") {
					return "CapabilityBoundingSet is a deny list (~): every other capability stays"
				}
				if !slices.Contains(allowedCaps, c) {
					return fmt.Sprintf("CapabilityBoundingSet has %s; moobi serve needs only %s", c, strings.Join(allowedCaps, " "))
				}
			}
			return ""
		}},
		{"AmbientCapabilities within the bounding set", func() string {
			amb := words("AmbientCapabilities")
			if !slices.Contains(amb, "CAP_NET_BIND_SERVICE") {
				return fmt.Sprintf("AmbientCapabilities=%s lacks CAP_NET_BIND_SERVICE (a non-root user cannot bind port 67)", strings.Join(amb, " "))
			}
			for _, c := range amb {
				if !slices.Contains(caps, c) {
					return fmt.Sprintf("AmbientCapabilities has %s, outside CapabilityBoundingSet", c)
				}
			}
			return ""
		}},
		{"not root", func() string {
			if u := one("User"); (u == "" || u == "root" || u == "0") && !unitBool(one("DynamicUser")) {
				return fmt.Sprintf("User=%q and no DynamicUser: the service runs as root", u)
			}
			return ""
		}},
		{"data_dir writable under ProtectSystem=strict", func() string {
			if one("ProtectSystem") != "strict" {
				return fmt.Sprintf("ProtectSystem=%s, want strict", one("ProtectSystem"))
			}
			rw := words("ReadWritePaths")
			for i := range rw {
				rw[i] = strings.TrimPrefix(rw[i], "-")
			}
			if !slices.Contains(rw, inventory.DefaultDataDir) {
				return fmt.Sprintf("ReadWritePaths=%s lacks %s", strings.Join(rw, " "), inventory.DefaultDataDir)
			}
			return ""
		}},
		{"iPXE binaries and their /boot targets stay visible", func() string {
			for _, k := range []string{"InaccessiblePaths", "TemporaryFileSystem"} {
				for _, p := range words(k) {
					p = strings.TrimLeft(p, "-+")
					p, _, _ = strings.Cut(p, ":")
					for _, need := range []string{"/boot", inventory.DefaultIPXEDir} {
						if need == p || strings.HasPrefix(need, strings.TrimSuffix(p, "/")+"/") {
							return fmt.Sprintf("%s=%s hides %s", k, p, need)
						}
					}
				}
			}
			return ""
		}},
		{"the host's network, as root's user namespace sees it", func() string {
			if unitBool(one("PrivateNetwork")) {
				return "PrivateNetwork=yes: proxy DHCP must see the boot interface"
			}
			if unitBool(one("PrivateUsers")) {
				return "PrivateUsers=yes: CAP_NET_BIND_SERVICE would hold in a user namespace of its own, not for the host's ports"
			}
			fams := words("RestrictAddressFamilies")
			for _, f := range []string{"AF_INET", "AF_NETLINK"} {
				if len(fams) > 0 && !slices.Contains(fams, f) {
					return fmt.Sprintf("RestrictAddressFamilies=%s lacks %s", strings.Join(fams, " "), f)
				}
			}
			return ""
		}},
		{"reload and stop", func() string {
			if r := one("ExecReload"); !strings.Contains(r, "kill") || !strings.Contains(r, "-HUP") || !strings.Contains(r, "$MAINPID") {
				return fmt.Sprintf("ExecReload=%s, want kill -HUP $MAINPID", r)
			}
			if ks := one("KillSignal"); ks != "" && ks != "SIGTERM" && ks != "TERM" {
				return fmt.Sprintf("KillSignal=%s: moobi serve drains on SIGTERM", ks)
			}
			d, err := unitSeconds(one("TimeoutStopSec"))
			if err != nil {
				return "TimeoutStopSec: " + err.Error()
			}
			if d <= httpDrain {
				return fmt.Sprintf("TimeoutStopSec=%s is not longer than the %v HTTP drain", one("TimeoutStopSec"), httpDrain)
			}
			return ""
		}},
	} {
		if msg := tc.err(); msg != "" {
			t.Errorf("%s: %s", tc.what, msg)
		}
	}
}
