package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"moobi/lab"
)

// TestContainer builds the Dockerfile's image with podman and runs it in
// the lab's appliance namespace. No registry is reachable here, so the
// golang: and debian: stages cannot run: the binary and the node initramfs
// (built on this machine) and Debian's iPXE files (the host's ipxe package)
// are imported as one image and named for the Dockerfile's BINARIES and
// IPXE stages, as docs/operations.md tells an operator without a registry.
// Inside the image, `moobi check` passes on a good hosts.yaml and fails on
// a bad one, and the default command, `moobi serve`, with only
// CAP_NET_BIND_SERVICE, answers /healthz, a PXE DISCOVER (proxy DHCP), a
// TFTP read of the image's own iPXE binary and serves the node initramfs it
// keyed at start, then stops cleanly on SIGTERM.
func TestContainer(t *testing.T) {
	lab.RequireRoot(t, "podman", "runc", "curl")
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	bin := moobiBinary(t)
	src, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	base := nodeInitrdBase(t, ctx, bin, src)

	id := randomHex(4)
	inputs, image := "localhost/moobi-test-inputs:"+id, "localhost/moobi-test:"+id
	tarball := filepath.Join(t.TempDir(), "inputs.tar")
	if err := writeTar(tarball, map[string]string{
		"src/bin/moobi":                bin,
		"src/bin/node-initrd.cpio.gz":  base,
		"usr/lib/ipxe/undionly.kpxe":   "/usr/lib/ipxe/undionly.kpxe",
		"usr/lib/ipxe/snponly.efi":     "/usr/lib/ipxe/snponly.efi",
		"boot/ipxe.efi":                "/boot/ipxe.efi",
		"usr/share/doc/ipxe/copyright": "/usr/share/doc/ipxe/copyright",
	}); err != nil {
		t.Fatal(err)
	}
	buildStart := time.Now()
	podman(t, ctx, "import", "--quiet", tarball, inputs)
	t.Cleanup(func() { podmanQuiet("rmi", "--force", inputs) })
	podman(t, ctx, "build", "--quiet", "--build-arg", "BINARIES="+inputs, "--build-arg", "IPXE="+inputs,
		"--tag", image, "--file", filepath.Join(src, "Dockerfile"), src)
	t.Cleanup(func() { podmanQuiet("rmi", "--force", image) })
	t.Logf("image %s built in %v", image, time.Since(buildStart).Round(time.Millisecond))

	l := lab.NewForTest(t, ctx)
	// The operator's folders: hosts.yaml (mounted read-only, as a folder),
	// the data folder, and the direct profile's boot files.
	etc, data, boot := filepath.Join(l.Dir(), "etc"), filepath.Join(l.Dir(), "data"), filepath.Join(l.Dir(), "boot")
	for _, d := range []string{etc, data, boot} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(boot, "vmlinuz"), "a kernel")
	writeFile(t, filepath.Join(boot, "rescue.cpio.gz"), "an initramfs")
	const mac = "52:54:00:c0:7a:01"
	hosts := fmt.Sprintf(`appliance:
  interface: br0
  http_port: 8080
profiles:
  rescue:
    kernel: /srv/boot/vmlinuz
    initrd: [/srv/boot/rescue.cpio.gz]
    cmdline: console=ttyS0
hosts:
  node1:
    mac: %s
    profile: rescue
`, mac)
	writeFile(t, filepath.Join(etc, "hosts.yaml"), hosts)
	writeFile(t, filepath.Join(etc, "bad.yaml"), strings.Replace(hosts, mac, "52:54:00:c0:7a", 1))

	// As docs/operations.md runs it, but joining the lab's appliance
	// namespace instead of the host's network. runc and the explicit
	// limits are for this machine: crun refuses its hybrid cgroup layout,
	// and root here cannot raise limits above its own (no
	// CAP_SYS_RESOURCE), which podman's defaults do.
	var nofile syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile); err != nil {
		t.Fatal(err)
	}
	runArgs := []string{"--runtime", "runc",
		"--ulimit", fmt.Sprintf("nofile=%d:%d", nofile.Max, nofile.Max), "--ulimit", "nproc=4096:4096",
		"--network", "ns:/run/netns/" + l.ApplianceNS(),
		"--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE",
		"-v", etc + ":/etc/moobi:ro", "-v", data + ":/var/lib/moobi", "-v", boot + ":/srv/boot:ro"}

	t.Run("check", func(t *testing.T) {
		out := podman(t, ctx, append(append([]string{"run", "--rm"}, runArgs...), image, "check", "--config", "/etc/moobi/hosts.yaml")...)
		t.Logf("moobi check: %s", strings.TrimSpace(out))
		cmd := exec.CommandContext(ctx, "podman", append(append([]string{"run", "--rm"}, runArgs...), image, "check", "--config", "/etc/moobi/bad.yaml")...)
		bad, err := cmd.CombinedOutput()
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(bad), "/etc/moobi/bad.yaml:") {
			t.Errorf("moobi check of a bad MAC in the container: %v, want exit 1 and a /etc/moobi/bad.yaml:LINE line\n%s", err, bad)
		}
	})

	name := "moobi-test-" + id
	serveStart := time.Now()
	podman(t, ctx, append(append([]string{"run", "--detach", "--name", name}, runArgs...), image)...)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("podman", "logs", name).CombinedOutput()
			t.Logf("podman logs %s (tail):\n%s", name, lab.Tail(string(out), 40))
		}
		podmanQuiet("rm", "--force", "--time", "0", name)
	})
	url := "http://" + lab.ApplianceAddr + ":8080"
	eventually(t, ctx, time.Minute, 200*time.Millisecond, func() (bool, string) {
		out, err := curl(ctx, l, url+"/healthz")
		return err == nil && strings.TrimSpace(out) == "ok", fmt.Sprintf("/healthz: %q, %v", out, err)
	})
	t.Logf("moobi serve in the container answers /healthz %v after podman run", time.Since(serveStart).Round(time.Millisecond))

	ns := probeHost(t, ctx, l, "probe", "10.99.0.61")
	reply, err := proxyDHCPProbe(ctx, ns, mac)
	if err != nil {
		t.Fatal(err)
	}
	if reply.BootFile != "undionly.kpxe" || reply.Server != lab.ApplianceAddr || reply.Next != lab.ApplianceAddr || reply.Class != "PXEClient" {
		t.Errorf("proxy DHCP offer %+v, want undionly.kpxe from %s (PXEClient)", reply, lab.ApplianceAddr)
	}

	// The iPXE binary proxy DHCP names is the one in the image.
	got := filepath.Join(l.Dir(), "undionly.kpxe")
	run(t, ctx, "ip", "netns", "exec", ns, lab.BusyboxPath, "tftp", "-g", "-r", reply.BootFile, "-l", got, lab.ApplianceAddr)
	want, err := os.ReadFile("/usr/lib/ipxe/undionly.kpxe")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(got); err != nil || !bytes.Equal(b, want) {
		t.Errorf("TFTP %s from the container: %d bytes (%v), want the %d of Debian's", reply.BootFile, len(b), err, len(want))
	}

	// `serve --initrd-base` keyed the image's initramfs into data_dir: the
	// node initramfs served is the base with the key appended.
	initrd, err := l.Command(ctx, "curl", "-sS", "--fail", "--max-time", "30", url+"/node/node-initrd.cpio.gz").Output()
	if err != nil {
		t.Fatalf("GET /node/node-initrd.cpio.gz: %v", err)
	}
	baseBytes, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	if len(initrd) <= len(baseBytes) || !bytes.Equal(initrd[:len(baseBytes)], baseBytes) {
		t.Errorf("the node initramfs served (%d bytes) is not the image's base (%d bytes) with a key appended", len(initrd), len(baseBytes))
	}

	// docker/podman stop sends SIGTERM: moobi drains and exits 0.
	podman(t, ctx, "stop", "--time", "20", name)
	if code := strings.TrimSpace(podman(t, ctx, "inspect", "--format", "{{.State.ExitCode}}", name)); code != "0" {
		t.Errorf("moobi serve exited %s on SIGTERM, want 0", code)
	}
	t.Logf("TestContainer: %v in all", time.Since(start).Round(time.Millisecond))
}

// nodeInitrdBase is the node initramfs without a key that `make initrd`
// wrote beside $MOOBI_BIN, or one built from the tree (cached).
func nodeInitrdBase(t *testing.T, ctx context.Context, bin, src string) string {
	t.Helper()
	if b := os.Getenv("MOOBI_BIN"); b != "" {
		p := filepath.Join(filepath.Dir(b), "node-initrd.cpio.gz")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	start := time.Now()
	base, built, err := lab.NodeInitrdBase(ctx, lab.TestCacheDir(t), bin, src)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("node initramfs base (built: %v) in %v", built, time.Since(start).Round(time.Millisecond))
	return base
}

// podman runs podman and returns its standard output, failing the test
// on error.
func podman(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "podman", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("podman %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// podmanQuiet runs podman for a cleanup, ignoring its result.
func podmanQuiet(args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	exec.CommandContext(ctx, "podman", args...).Run()
}

// writeTar writes a tarball holding each host file (the value) under its
// name (the key), with its mode, owned by root, and the folders above.
func writeTar(out string, files map[string]string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	dirs := map[string]bool{}
	for name, host := range files {
		for d := filepath.Dir(name); d != "." && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755}); err != nil {
				return err
			}
		}
		src, err := os.Open(host)
		if err != nil {
			return err
		}
		st, err := src.Stat()
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(st.Mode().Perm()), Size: st.Size(), ModTime: st.ModTime()})
		}
		if err == nil {
			_, err = io.Copy(tw, src)
		}
		src.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", host, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}
