package inventory

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Problem is one thing wrong with an inventory file, at a line of it.
type Problem struct {
	File string
	Line int
	Msg  string
}

func (p Problem) String() string { return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg) }

// Error lists every problem found in an inventory file, one
// `FILE:LINE: message` line each.
type Error struct{ Problems []Problem }

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads and validates the inventory at path.
func Load(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	return Parse(path, data)
}

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

// Parse validates data, the contents of the inventory file named file.
// Relative paths in it are taken relative to the file's folder. The error,
// if any, is an *Error listing every problem found.
func Parse(file string, data []byte) (*Inventory, error) {
	p := &parser{file: file, dir: filepath.Dir(file)}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := 1, strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		p.errorf(line, "invalid YAML: %s", msg)
		return nil, p.err()
	}
	inv := &Inventory{File: file, Profiles: map[string]*Profile{}, Hosts: map[string]*Host{}, byMAC: map[string]*Host{}}
	if len(doc.Content) == 0 {
		p.errorf(1, "empty inventory: the appliance section is required")
		return nil, p.err()
	}
	root := doc.Content[0]
	var applianceLine int
	p.mapping(root, "the inventory", []string{"appliance", "profiles", "hosts"}, func(key string, k, v *yaml.Node) {
		switch key {
		case "appliance":
			applianceLine = k.Line
			p.appliance(v, &inv.Appliance)
		case "profiles":
			p.mapping(v, "profiles", nil, func(name string, k, v *yaml.Node) {
				p.profile(inv, name, k, v)
			})
		case "hosts":
			p.mapping(v, "hosts", nil, func(name string, k, v *yaml.Node) {
				p.host(inv, name, k, v)
			})
		}
	})
	if applianceLine == 0 {
		p.errorf(root.Line, "the appliance section is required")
	}
	p.check(inv, applianceLine)
	if err := p.err(); err != nil {
		return nil, err
	}
	return inv, nil
}

type parser struct {
	file, dir string
	problems  []Problem
}

func (p *parser) errorf(line int, format string, args ...any) {
	p.problems = append(p.problems, Problem{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) err() error {
	if len(p.problems) == 0 {
		return nil
	}
	sort.SliceStable(p.problems, func(i, j int) bool { return p.problems[i].Line < p.problems[j].Line })
	return &Error{Problems: p.problems}
}

// mapping calls fn for each key of the mapping n, reporting keys that are
// repeated or, when allowed is not nil, not in allowed.
func (p *parser) mapping(n *yaml.Node, what string, allowed []string, fn func(key string, k, v *yaml.Node)) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, "%s must be a mapping", what)
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		if first, dup := seen[key]; dup {
			p.errorf(k.Line, "duplicate key %q in %s (first at line %d)", key, what, first)
			continue
		}
		seen[key] = k.Line
		if allowed != nil && !contains(allowed, key) {
			p.errorf(k.Line, "unknown key %q in %s (known: %s)", key, what, strings.Join(allowed, ", "))
			continue
		}
		fn(key, k, v)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *parser) str(v *yaml.Node, key string) string {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		p.errorf(v.Line, "%s must be a string", key)
		return ""
	}
	return v.Value
}

func (p *parser) strList(v *yaml.Node, key string) []string {
	if v.Kind == yaml.ScalarNode {
		return []string{p.str(v, key)}
	}
	if v.Kind != yaml.SequenceNode {
		p.errorf(v.Line, "%s must be a list of strings", key)
		return nil
	}
	var out []string
	for _, e := range v.Content {
		out = append(out, p.str(e, key))
	}
	return out
}

// path resolves a file name relative to the inventory's folder.
func (p *parser) path(s string) string {
	if s == "" || filepath.IsAbs(s) {
		return s
	}
	return filepath.Join(p.dir, s)
}

var applianceKeys = []string{"interface", "address", "http_port", "data_dir", "ipxe_dir", "node_initrd", "signing_key",
	"unknown_hosts", "bios_binary", "uefi_binary", "arm64_binary", "seed_upload_mbit", "seed_rest_copies", "dhcp", "shim", "grub",
	"admin_listen", "read_auth", "tftp_per_client"}

func (p *parser) appliance(n *yaml.Node, a *Appliance) {
	a.SeedRestCopies = DefaultSeedRestCopies
	p.mapping(n, "appliance", applianceKeys, func(key string, k, v *yaml.Node) {
		if key == "dhcp" {
			p.dhcp(k, v, &a.DHCP)
			return
		}
		s := p.str(v, "appliance."+key)
		switch key {
		case "interface":
			a.Interface = s
		case "address":
			ip := parseIPv4(s)
			if ip == nil {
				p.errorf(v.Line, "appliance.address %q is not an IPv4 address", s)
			}
			a.Address = ip
		case "http_port":
			port, err := strconv.Atoi(s)
			if err != nil || port < 1 || port > 65535 {
				p.errorf(v.Line, "appliance.http_port %q is not a port number (1-65535)", s)
			}
			a.HTTPPort = port
		case "data_dir":
			a.DataDir = p.path(s)
		case "ipxe_dir":
			a.IPXEDir = p.path(s)
		case "node_initrd":
			a.NodeInitrd = p.path(s)
		case "signing_key":
			a.SigningKey = p.path(s)
		case "unknown_hosts":
			a.UnknownHosts = s
		case "bios_binary":
			a.BIOSBinary = s
		case "uefi_binary":
			a.UEFIBinary = s
		case "arm64_binary":
			a.ARM64Binary = s
		case "shim":
			a.Shim = p.path(s)
		case "grub":
			a.Grub = p.path(s)
		case "seed_upload_mbit":
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n > 1000000 {
				p.errorf(v.Line, "appliance.seed_upload_mbit %q is not a rate in Mbit/s (0 for no cap)", s)
			}
			a.SeedUploadMbit = n
		case "seed_rest_copies":
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n > 1000 {
				p.errorf(v.Line, "appliance.seed_rest_copies %q is not a number of nodes (0-1000; 0 never pauses)", s)
			}
			a.SeedRestCopies = n
		case "tftp_per_client":
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 64 {
				p.errorf(v.Line, "appliance.tftp_per_client %q is not a number of transfers (1-64)", s)
			}
			a.TFTPPerClient = n
		case "admin_listen":
			a.AdminListen = p.adminListen(v.Line, s)
		case "read_auth":
			a.ReadAuth = p.readAuth(v.Line, s)
		}
	})
	if a.HTTPPort == 0 {
		a.HTTPPort = DefaultHTTPPort
	}
	if a.ReadAuth == "" {
		a.ReadAuth = ReadAuthNone
	}
	if a.DataDir == "" {
		a.DataDir = DefaultDataDir
	}
	if a.IPXEDir == "" {
		a.IPXEDir = DefaultIPXEDir
	}
	if a.NodeInitrd == "" {
		a.NodeInitrd = filepath.Join(a.DataDir, defaultInitrdSuffix)
	}
	if a.SigningKey == "" {
		a.SigningKey = filepath.Join(a.DataDir, defaultSigningKey)
	}
	if a.UnknownHosts == "" {
		a.UnknownHosts = UnknownHostsIgnore
	}
	if a.BIOSBinary == "" {
		a.BIOSBinary = DefaultBIOSBinary
	}
	if a.UEFIBinary == "" {
		a.UEFIBinary = DefaultUEFIBinary
	}
	if a.ARM64Binary == "" {
		a.ARM64Binary = DefaultARM64Binary
	}
	if a.Shim == "" {
		a.Shim = DefaultShim
	}
	if a.Grub == "" {
		a.Grub = DefaultGrub
	}
	for _, b := range []struct{ key, name string }{{"bios_binary", a.BIOSBinary}, {"uefi_binary", a.UEFIBinary}, {"arm64_binary", a.ARM64Binary}} {
		if filepath.IsAbs(b.name) || strings.Contains(b.name, "..") {
			p.errorf(n.Line, "appliance.%s %q must be a name inside ipxe_dir", b.key, b.name)
		}
	}
}

var profileKeys = []string{"kernel", "initrd", "cmdline", "image", "cache", "cache_fallback", "bmc", "overlay", "vars", "authorized_keys", "secure_boot"}

func (p *parser) profile(inv *Inventory, name string, k, n *yaml.Node) {
	pr := &Profile{Name: name}
	fallbackLine := 0
	p.mapping(n, "profile "+name, profileKeys, func(key string, _, v *yaml.Node) {
		switch key {
		case "kernel":
			pr.Kernel = p.path(p.str(v, "kernel"))
		case "initrd":
			for _, s := range p.strList(v, "initrd") {
				pr.Initrd = append(pr.Initrd, p.path(s))
			}
		case "cmdline":
			pr.Cmdline = p.str(v, "cmdline")
			if strings.ContainsAny(pr.Cmdline, "\n\r") {
				p.errorf(v.Line, "profile %s: cmdline must be a single line", name)
			}
		case "image":
			pr.Image = p.str(v, "image")
		case "cache":
			pr.Cache = p.str(v, "cache")
		case "cache_fallback":
			if pr.CacheFallback = p.str(v, "cache_fallback"); v.Kind == yaml.ScalarNode {
				fallbackLine = v.Line // a non-string was reported by str
			}
		case "bmc":
			pr.BMC = p.bmc(v, "profile "+name)
		case "secure_boot":
			pr.secureBoot = p.secureBoot(v, "profile "+name)
			pr.SecureBoot = pr.secureBoot.on
		case "overlay", "vars", "authorized_keys":
			p.identity(key, v, &pr.Identity, "profile "+name)
		}
	})
	if !validName(name) {
		p.errorf(k.Line, "profile name %q: use letters, digits, '-', '_' and '.'", name)
	}
	switch {
	case pr.Kernel == "" && pr.Image == "":
		p.errorf(k.Line, "profile %s: needs either kernel (a direct netboot) or image (a Moobi image)", name)
	case pr.Kernel != "" && pr.Image != "":
		p.errorf(k.Line, "profile %s: kernel and image exclude each other", name)
	case pr.Kernel != "" && pr.Cache != "":
		p.errorf(k.Line, "profile %s: cache applies to image profiles only", name)
	case pr.Image != "" && !validName(pr.Image):
		p.errorf(k.Line, "profile %s: image name %q: use letters, digits, '-', '_' and '.'", name, pr.Image)
	case pr.Cache != "" && !strings.HasPrefix(pr.Cache, "/dev/"):
		p.errorf(k.Line, "profile %s: cache %q must be a device under /dev (omit it to cache in RAM)", name, pr.Cache)
	}
	switch {
	case fallbackLine == 0:
		if pr.Cache != "" {
			pr.CacheFallback = CacheFallbackFail
		}
	case pr.CacheFallback != CacheFallbackFail && pr.CacheFallback != CacheFallbackRAM:
		p.errorf(fallbackLine, "profile %s: cache_fallback %q is neither %q nor %q", name, pr.CacheFallback, CacheFallbackFail, CacheFallbackRAM)
	case pr.Cache == "":
		p.errorf(fallbackLine, "profile %s: cache_fallback needs a cache device (without cache the node caches in RAM)", name)
	}
	for _, f := range append([]string{pr.Kernel}, pr.Initrd...) {
		if f == "" {
			continue
		}
		if st, err := os.Stat(f); err != nil {
			p.errorf(k.Line, "profile %s: %s", name, describeStatErr(f, err))
		} else if !st.Mode().IsRegular() {
			p.errorf(k.Line, "profile %s: %s is not a regular file", name, f)
		}
	}
	seen := map[string]bool{}
	for i := range pr.Initrd {
		if n := pr.InitrdName(i); seen[n] {
			p.errorf(k.Line, "profile %s: two initrds are named %s; iPXE and UEFI tell initrds apart by file name", name, n)
		} else {
			seen[n] = true
		}
	}
	inv.Profiles[name] = pr
}

var hostKeys = []string{"mac", "profile", "ip", "bmc", "overlay", "vars", "authorized_keys", "secure_boot"}

func (p *parser) host(inv *Inventory, name string, k, n *yaml.Node) {
	h := &Host{Name: name, line: k.Line}
	var macLine int
	p.mapping(n, "host "+name, hostKeys, func(key string, _, v *yaml.Node) {
		switch key {
		case "mac":
			macLine = v.Line
			s := p.str(v, "mac")
			mac, err := ParseMAC(s)
			if err != nil {
				p.errorf(v.Line, "host %s: malformed MAC %q (want six hex bytes like 52:54:00:12:34:01)", name, s)
				return
			}
			h.MAC = mac
		case "profile":
			h.Profile = p.str(v, "profile")
		case "ip":
			p.hostIP(h, v)
		case "bmc":
			h.BMC = p.bmc(v, "host "+name)
		case "secure_boot":
			h.secureBoot = p.secureBoot(v, "host "+name)
		case "overlay", "vars", "authorized_keys":
			p.identity(key, v, &h.Identity, "host "+name)
		}
	})
	if !validHostname(name) {
		p.errorf(k.Line, "host name %q is not a valid hostname (letters, digits and '-', at most 63)", name)
	}
	if macLine == 0 {
		p.errorf(k.Line, "host %s: mac is required", name)
	}
	if h.Profile == "" {
		p.errorf(k.Line, "host %s: profile is required", name)
	}
	if h.MAC != nil {
		if other, dup := inv.byMAC[h.MAC.String()]; dup {
			p.errorf(macLine, "host %s: MAC %s is already used by host %s (line %d)", name, h.MAC, other.Name, other.line)
		} else {
			inv.byMAC[h.MAC.String()] = h
		}
	}
	inv.Hosts[name] = h
}

// check validates references between sections, once everything is parsed.
func (p *parser) check(inv *Inventory, applianceLine int) {
	a := inv.Appliance
	p.checkSecureBoot(inv)
	if applianceLine != 0 && a.Interface == "" {
		p.errorf(applianceLine, "appliance.interface is required")
	}
	if u := a.UnknownHosts; u != UnknownHostsIgnore && inv.Profiles[u] == nil {
		p.errorf(applianceLine, "appliance.unknown_hosts %q is neither %q nor a profile", u, UnknownHostsIgnore)
	}
	// The signing key is created on first use: it may be missing, but
	// what is there must be a file.
	if st, err := os.Stat(a.SigningKey); err == nil && !st.Mode().IsRegular() {
		p.errorf(applianceLine, "appliance.signing_key: %s is not a regular file", a.SigningKey)
	}
	if st, err := os.Stat(a.IPXEDir); err != nil {
		p.errorf(applianceLine, "appliance.ipxe_dir: %s", describeStatErr(a.IPXEDir, err))
	} else if !st.IsDir() {
		p.errorf(applianceLine, "appliance.ipxe_dir: %s is not a folder", a.IPXEDir)
	}
	p.checkDHCP(inv, applianceLine)
	for _, name := range sortedKeys(inv.Hosts) {
		h := inv.Hosts[name]
		if h.Profile != "" && inv.Profiles[h.Profile] == nil {
			p.errorf(h.line, "host %s: profile %q does not exist", name, h.Profile)
		}
		p.checkHostBMC(inv, h)
	}
	p.checkOverlays(inv)
}

func describeStatErr(path string, err error) string {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Sprintf("%s does not exist", path)
	}
	return err.Error()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
