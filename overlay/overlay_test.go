package overlay

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func node() Node {
	return Node{Name: "rack1-node01", MAC: "52:54:00:12:34:01", Address: "10.99.0.101", Profile: "web",
		Image: "debian12", Version: "v3", MachineID: MachineID("rack1-node01"), Appliance: "http://10.99.0.1:8080",
		Vars: map[string]string{"rack": "r1", "role": "db"}}
}

func write(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, mode)
}

func TestMachineID(t *testing.T) {
	a, b := MachineID("node01"), MachineID("node02")
	if len(a) != 32 || a == b || a != MachineID("node01") || strings.ToLower(a) != a {
		t.Fatalf("MachineID: %q %q", a, b)
	}
	if a[12] != '4' {
		t.Fatalf("MachineID %s is not a version 4 UUID", a)
	}
}

func TestRenderAndApply(t *testing.T) {
	profileDir, hostDir := t.TempDir(), t.TempDir()
	write(t, filepath.Join(profileDir, "etc/motd.tmpl"), "{{.Name}} in rack {{.Vars.rack}} runs {{.Image}} {{.Version}}\n", 0o644)
	write(t, filepath.Join(profileDir, "etc/role"), "profile\n", 0o644)
	write(t, filepath.Join(profileDir, "usr/local/bin/hello"), "#!/bin/sh\necho hi\n", 0o755)
	write(t, filepath.Join(hostDir, "etc/role.tmpl"), "{{.Vars.role}}\n", 0o600)
	s := Spec{Node: node(), AuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB test@example"}, Dirs: []string{profileDir, hostDir}}
	b, sum, err := Render(s)
	if err != nil {
		t.Fatal(err)
	}
	b2, sum2, err := Render(s)
	if err != nil || sum2 != sum || !bytes.Equal(b, b2) {
		t.Fatalf("two renders differ: %s %s %v", sum, sum2, err)
	}
	if err := Verify(b, sum); err != nil {
		t.Fatal(err)
	}
	if err := Verify(append(b, 0), sum); err == nil {
		t.Fatal("Verify accepted a changed archive")
	}

	root := t.TempDir()
	// The image has a symlink where the overlay writes a file: it is
	// replaced, not followed out of the root.
	outside := filepath.Join(t.TempDir(), "outside")
	write(t, outside, "untouched\n", 0o644)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	if err := os.Symlink(outside, filepath.Join(root, "etc/hostname")); err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(root, b); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file, want string
		mode       os.FileMode
	}{
		{"etc/hostname", "rack1-node01\n", 0o644},
		{"etc/machine-id", MachineID("rack1-node01") + "\n", 0o444},
		{"etc/motd", "rack1-node01 in rack r1 runs debian12 v3\n", 0o644},
		{"etc/role", "db\n", 0o600},
		{"usr/local/bin/hello", "#!/bin/sh\necho hi\n", 0o755},
		{"root/.ssh/authorized_keys", s.AuthorizedKeys[0] + "\n", 0o600},
	} {
		got, err := os.ReadFile(filepath.Join(root, c.file))
		if err != nil || string(got) != c.want {
			t.Errorf("%s = %q, %v; want %q", c.file, got, err, c.want)
			continue
		}
		st, _ := os.Lstat(filepath.Join(root, c.file))
		if st.Mode().Perm() != c.mode || !st.Mode().IsRegular() {
			t.Errorf("%s mode %v, want %v", c.file, st.Mode(), c.mode)
		}
	}
	if got, _ := os.ReadFile(outside); string(got) != "untouched\n" {
		t.Errorf("the file outside the root was written through a symlink: %q", got)
	}
	if st, err := os.Stat(filepath.Join(root, "root/.ssh")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("root/.ssh: %v %v", st, err)
	}
	nw, _ := os.ReadFile(filepath.Join(root, NetworkdFile))
	if !strings.Contains(string(nw), "MACAddress=52:54:00:12:34:01") || !strings.Contains(string(nw), "ClientIdentifier=mac") {
		t.Errorf("networkd file:\n%s", nw)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/motd.tmpl")); err == nil {
		t.Error("the template itself was written")
	}
}

func TestRenderErrors(t *testing.T) {
	for _, c := range []struct {
		name, file, text, want string
	}{
		{"missing var", "etc/x.tmpl", "{{.Vars.nope}}", `x.tmpl:1:7: executing "`},
		{"parse error", "etc/y.tmpl", "line1\n{{.Name", "y.tmpl:2: unclosed action"},
		{"unknown field", "etc/z.tmpl", "{{.Nope}}", "can't evaluate field Nope"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, c.file), c.text, 0o644)
			_, _, err := Render(Spec{Node: node(), Dirs: []string{dir}})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("Render error %v, want one naming %s and containing %q", err, dir, c.want)
			}
		})
	}
	if _, _, err := Render(Spec{Node: node(), Dirs: []string{"/nonexistent-overlay"}}); err == nil || !strings.Contains(err.Error(), "/nonexistent-overlay") {
		t.Fatalf("missing folder: %v", err)
	}
}

func TestApplyRefuses(t *testing.T) {
	mk := func(hs ...*tar.Header) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, h := range hs {
			tw.WriteHeader(h)
			if h.Size > 0 {
				tw.Write(make([]byte, h.Size))
			}
		}
		tw.Close()
		return b.Bytes()
	}
	for _, c := range []struct {
		name string
		h    *tar.Header
		want string
	}{
		{"absolute", &tar.Header{Name: "/etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644}, "not a relative path"},
		{"dotdot", &tar.Header{Name: "../../etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644}, "not a relative path"},
		{"device", &tar.Header{Name: "dev/sda", Typeflag: tar.TypeBlock, Mode: 0o600}, "not a folder, a regular file or a symlink"},
		{"hardlink", &tar.Header{Name: "etc/x", Typeflag: tar.TypeLink, Linkname: "etc/shadow"}, "not a folder, a regular file or a symlink"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			_, err := Apply(root, mk(c.h))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Apply error %v, want %q", err, c.want)
			}
		})
	}
	// A symlink in the archive, then a file through it: os.Root refuses
	// to follow the link out of the root.
	root := t.TempDir()
	out := t.TempDir()
	_, err := Apply(root, mk(&tar.Header{Name: "etc", Typeflag: tar.TypeSymlink, Linkname: out},
		&tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4}))
	if err == nil {
		t.Fatal("Apply wrote through a symlink leaving the root")
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Fatalf("written outside the root: %v", ents)
	}
}

// FuzzApply: any archive either fails or writes only inside the root.
func FuzzApply(f *testing.F) {
	b, _, _ := Render(Spec{Node: node()})
	f.Add(b)
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, archive []byte) {
		parent := t.TempDir()
		root := filepath.Join(parent, "root")
		os.Mkdir(root, 0o755)
		Apply(root, archive)
		ents, _ := os.ReadDir(parent)
		if len(ents) != 1 {
			t.Fatalf("Apply wrote beside the root: %v", ents)
		}
	})
}
