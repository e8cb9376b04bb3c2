// Package overlay is a node's per-host overlay: the files the appliance
// renders for one host (its identity: hostname, machine-id, network setup,
// SSH authorized keys; then the operator's overlay folders of files and
// text/template templates) and that the node writes onto its image's
// writable layer before it switch_roots. Render runs on the appliance,
// Apply on the node; the format between them is a plain tar archive whose
// SHA-256 the signed boot config pins.
package overlay

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"
	"time"
)

// MaxSize bounds a rendered overlay: the node holds it in RAM and an
// operator's folder should hold configuration, not software.
const MaxSize = 8 << 20

// TemplateSuffix marks the files of an overlay folder that are rendered
// with text/template; the suffix is dropped from the file's name on the
// node. Other files are copied as they are.
const TemplateSuffix = ".tmpl"

// Node is what a template sees of the node it is rendered for, as {{.Name}},
// {{.Vars.rack}} and so on.
type Node struct {
	// Name is the host's name in hosts.yaml (its hostname).
	Name string
	// MAC is the boot NIC's address, lower case with colons.
	MAC string
	// Address is the IPv4 address the node asked for its boot config from
	// (the address DHCP gave it).
	Address string
	// Profile, Image and Version: what the node boots.
	Profile string
	Image   string
	Version string
	// MachineID is the node's /etc/machine-id: 32 hex digits, the same on
	// every boot of the host.
	MachineID string
	// Appliance is the appliance's HTTP root, e.g. http://10.99.0.1:8080.
	Appliance string
	// Vars are hosts.yaml's vars:, the profile's with the host's over them.
	Vars map[string]string
}

// Spec is everything Render needs for one node.
type Spec struct {
	Node Node
	// AuthorizedKeys are written to /root/.ssh/authorized_keys.
	AuthorizedKeys []string
	// Dirs are the operator's overlay folders, in order: a file of a later
	// folder replaces the same path of an earlier one (the profile's
	// folder first, then the host's).
	Dirs []string
}

// MachineID is the stable machine-id of the host called name: derived from
// the name, so that it is the same on every boot and every appliance of a
// site, and different for every host. It has the form systemd expects (32
// lower-case hex digits, a version 4 UUID without dashes).
func MachineID(name string) string {
	sum := sha256.Sum256([]byte("moobi machine-id\x00" + name))
	sum[6] = sum[6]&0x0f | 0x40 // version 4
	sum[8] = sum[8]&0x3f | 0x80 // RFC 4122 variant
	return hex.EncodeToString(sum[:16])
}

// entry is one file of the rendered overlay.
type entry struct {
	mode   fs.FileMode // permission bits, with fs.ModeDir or fs.ModeSymlink
	data   []byte
	target string // symlinks
}

// epoch is the modification time of every entry: a rendered overlay is the
// same bytes for the same inputs, so its digest is stable.
var epoch = time.Unix(0, 0).UTC()

// Render builds the overlay archive of one node and returns it with its
// SHA-256 (hex). Errors name the overlay file and, for templates, the line.
func Render(s Spec) ([]byte, string, error) {
	files := map[string]entry{}
	identity(files, s)
	for _, dir := range s.Dirs {
		if err := addDir(files, dir, s.Node); err != nil {
			return nil, "", err
		}
	}
	b, err := archive(files)
	if err != nil {
		return nil, "", err
	}
	if len(b) > MaxSize {
		return nil, "", fmt.Errorf("overlay for %s: %d bytes, more than the %d a node accepts", s.Node.Name, len(b), MaxSize)
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:]), nil
}

// NetworkdFile is where the identity overlay puts the boot NIC's
// systemd-networkd configuration.
const NetworkdFile = "etc/systemd/network/10-moobi-boot.network"

// identity adds the files every node gets: hostname, hosts, machine-id,
// the boot NIC's network setup (systemd-networkd keeps renewing the lease
// the node booted with: same client identifier, so the same address and no
// second lease) and the SSH authorized keys. An operator's folder may
// replace any of them.
func identity(files map[string]entry, s Spec) {
	n := s.Node
	files["etc/hostname"] = entry{mode: 0o644, data: []byte(n.Name + "\n")}
	files["etc/hosts"] = entry{mode: 0o644, data: []byte(fmt.Sprintf(
		"127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n", n.Name))}
	files["etc/machine-id"] = entry{mode: 0o444, data: []byte(n.MachineID + "\n")}
	files[NetworkdFile] = entry{mode: 0o644, data: []byte(fmt.Sprintf(`# Written by the Moobi appliance: the boot NIC keeps the address DHCP gave
# it at boot, and renews it. ClientIdentifier=mac matches the lease the node
# took in its initramfs, so the site DHCP server sees one client, not two.
[Match]
MACAddress=%s

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no

[DHCPv4]
ClientIdentifier=mac
SendHostname=yes
Hostname=%s
`, n.MAC, n.Name))}
	// Enable systemd-networkd in images that have it (a dangling link in
	// those that do not does nothing).
	files["etc/systemd/system/multi-user.target.wants/systemd-networkd.service"] = entry{mode: fs.ModeSymlink | 0o777, target: "/lib/systemd/system/systemd-networkd.service"}
	files["etc/ssh/sshd_config.d/moobi-host-keys.conf"] = entry{mode: 0o644, data: []byte(
		"# Written by the Moobi appliance: the node's own host keys, made on the node.\nHostKey /etc/ssh/ssh_host_ed25519_key\nHostKey /etc/ssh/ssh_host_ecdsa_key\n")}
	if len(s.AuthorizedKeys) > 0 {
		files["root/.ssh"] = entry{mode: fs.ModeDir | 0o700}
		files["root/.ssh/authorized_keys"] = entry{mode: 0o600, data: []byte(strings.Join(s.AuthorizedKeys, "\n") + "\n")}
	}
}

// addDir adds the files of one operator folder, rendering templates.
func addDir(files map[string]entry, dir string, n Node) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("overlay %s: %w", dir, err)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("overlay %s: %w", p, err)
		}
		perm := info.Mode().Perm()
		switch {
		case d.IsDir():
			files[rel] = entry{mode: fs.ModeDir | perm}
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("overlay %s: %w", p, err)
			}
			files[rel] = entry{mode: fs.ModeSymlink | 0o777, target: target}
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("overlay %s: %w", p, err)
			}
			if name, ok := strings.CutSuffix(rel, TemplateSuffix); ok {
				if data, err = renderTemplate(p, data, n); err != nil {
					return err
				}
				rel = name
			}
			files[rel] = entry{mode: perm, data: data}
		default:
			return fmt.Errorf("overlay %s: %s is neither a file, a folder nor a symlink", dir, rel)
		}
		return nil
	})
}

// renderTemplate renders one template file; a missing variable is an error
// (so a typo in hosts.yaml's vars shows at `moobi check`, not on a node).
func renderTemplate(file string, text []byte, n Node) ([]byte, error) {
	t, err := template.New(file).Option("missingkey=error").Parse(string(text))
	if err != nil {
		return nil, fmt.Errorf("overlay template %w", trimTemplateErr(err))
	}
	var b bytes.Buffer
	if err := t.Execute(&b, n); err != nil {
		return nil, fmt.Errorf("overlay template %w (host %s)", trimTemplateErr(err), n.Name)
	}
	return b.Bytes(), nil
}

// trimTemplateErr drops text/template's "template: " prefix: its errors
// already start with FILE:LINE.
func trimTemplateErr(err error) error {
	return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "template: "))
}

// archive writes files as a tar archive, in path order, folders of every
// file included, owned by root, with a fixed time.
func archive(files map[string]entry) ([]byte, error) {
	for name := range files {
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if _, ok := files[d]; !ok {
				files[d] = entry{mode: fs.ModeDir | 0o755}
			}
		}
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, name := range names {
		e := files[name]
		h := &tar.Header{Name: name, Mode: int64(e.mode.Perm()), ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case e.mode.IsDir():
			h.Typeflag, h.Name = tar.TypeDir, name+"/"
		case e.mode&fs.ModeSymlink != 0:
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.target
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("overlay %s: %w", name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("overlay %s: %w", name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
