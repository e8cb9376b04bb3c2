package inventory

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// BMC types: how the appliance talks to a host's baseboard management
// controller.
const (
	BMCIPMI    = "ipmi"    // IPMI 2.0 over LAN (RMCP+, UDP 623)
	BMCRedfish = "redfish" // DMTF Redfish over HTTPS
)

// BMC is a host's baseboard management controller: `hosts.H.bmc`, with the
// fields it does not set taken from its profile's `bmc`.
type BMC struct {
	// Type is BMCIPMI or BMCRedfish.
	Type string
	// Address is host or host:port for IPMI (port 623 by default), and
	// host, host:port or an https:// URL for Redfish.
	Address string
	// User is the BMC account's name.
	User string
	// PasswordFile holds the account's password (its first line), mode
	// 0600 or stricter. The password itself is never in hosts.yaml.
	PasswordFile string
	// InsecureTLS turns off the verification of a Redfish BMC's TLS
	// certificate.
	InsecureTLS bool

	// line is the line of each field, for errors; insecureSet tells an
	// explicit insecure_tls: false from none.
	line        map[string]int
	insecureSet bool
}

// Password reads the BMC password: the first line of PasswordFile, which
// must still be private to its owner.
func (b *BMC) Password() (string, error) {
	st, err := os.Stat(b.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("BMC password_file: %w", err)
	}
	if msg := passwordFileProblem(b.PasswordFile, st); msg != "" {
		return "", fmt.Errorf("BMC %s", msg)
	}
	data, err := os.ReadFile(b.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("BMC password_file: %w", err)
	}
	pw, _, _ := strings.Cut(string(data), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", fmt.Errorf("BMC password_file %s is empty", b.PasswordFile)
	}
	return pw, nil
}

// RedfishURL is the Redfish service root's scheme and host, e.g.
// "https://10.0.0.5" (Address with https:// added when it has no scheme).
func (b *BMC) RedfishURL() string {
	if strings.Contains(b.Address, "://") {
		return strings.TrimRight(b.Address, "/")
	}
	return "https://" + b.Address
}

// IPMIHostPort splits an IPMI address into host and port (623 by default).
func (b *BMC) IPMIHostPort() (string, int) {
	if h, p, err := net.SplitHostPort(b.Address); err == nil {
		n, _ := strconv.Atoi(p)
		return h, n
	}
	return strings.Trim(b.Address, "[]"), 623
}

var bmcKeys = []string{"type", "address", "user", "password_file", "insecure_tls"}

// bmc parses a `bmc:` mapping of a host or profile (what names it), checking
// each field given; completeness is checked once host and profile are merged.
func (p *parser) bmc(n *yaml.Node, what string) *BMC {
	b := &BMC{line: map[string]int{"bmc": n.Line}}
	// Keys are checked here rather than by mapping: "password" gets its
	// own message, and is not listed among the known keys.
	p.mapping(n, what+" bmc", nil, func(key string, k, v *yaml.Node) {
		switch {
		case key == "password":
			p.errorf(k.Line, "%s: bmc.password: inline passwords are not accepted; write the password to a file (chmod 600) and name it with bmc.password_file", what)
			return
		case !contains(bmcKeys, key):
			p.errorf(k.Line, "unknown key %q in %s bmc (known: %s)", key, what, strings.Join(bmcKeys, ", "))
			return
		}
		s := p.str(v, "bmc."+key)
		b.line[key] = v.Line
		switch key {
		case "type":
			if s != BMCIPMI && s != BMCRedfish {
				p.errorf(v.Line, "%s: bmc.type %q is neither %q nor %q", what, s, BMCIPMI, BMCRedfish)
			}
			b.Type = s
		case "address":
			b.Address = s
		case "user":
			b.User = s
		case "password_file":
			b.PasswordFile = p.path(s)
			if s == "" {
				return
			}
			if st, err := os.Stat(b.PasswordFile); err != nil {
				p.errorf(v.Line, "%s: bmc.password_file: %s", what, describeStatErr(b.PasswordFile, err))
			} else if msg := passwordFileProblem(b.PasswordFile, st); msg != "" {
				p.errorf(v.Line, "%s: bmc.%s", what, msg)
			}
		case "insecure_tls":
			switch s {
			case "true":
				b.InsecureTLS = true
			case "false":
			default:
				p.errorf(v.Line, "%s: bmc.insecure_tls %q is neither true nor false", what, s)
			}
			b.insecureSet = true
		}
	})
	return b
}

// passwordFileProblem says what is wrong with a password file, or "".
func passwordFileProblem(path string, st os.FileInfo) string {
	if !st.Mode().IsRegular() {
		return fmt.Sprintf("password_file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Sprintf("password_file %s is readable by group or others (mode %04o); run: chmod 600 %s", path, perm, path)
	}
	return ""
}

// mergeBMC is the BMC a host uses: its own fields, and its profile's for
// the fields it does not set. nil when neither sets a bmc.
func mergeBMC(host, profile *BMC) *BMC {
	if host == nil && profile == nil {
		return nil
	}
	if host == nil {
		c := *profile
		return &c
	}
	if profile == nil {
		return host
	}
	m := *host
	m.line = map[string]int{}
	for k, v := range profile.line {
		m.line[k] = v
	}
	for k, v := range host.line {
		m.line[k] = v
	}
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&m.Type, profile.Type}, {&m.Address, profile.Address}, {&m.User, profile.User}, {&m.PasswordFile, profile.PasswordFile},
	} {
		if *f.dst == "" {
			*f.dst = f.src
		}
	}
	if !host.insecureSet {
		m.InsecureTLS, m.insecureSet = profile.InsecureTLS, profile.insecureSet
	}
	return &m
}

// checkHostBMC merges host h's bmc with its profile's and reports what a
// working BMC still lacks.
func (p *parser) checkHostBMC(inv *Inventory, h *Host) {
	var prof *BMC
	if pr := inv.Profiles[h.Profile]; pr != nil {
		prof = pr.BMC
	}
	h.BMC = mergeBMC(h.BMC, prof)
	b := h.BMC
	if b == nil {
		return
	}
	line := b.line["bmc"]
	for _, f := range []struct{ key, val string }{{"type", b.Type}, {"address", b.Address}, {"user", b.User}, {"password_file", b.PasswordFile}} {
		if f.val == "" {
			p.errorf(line, "host %s: bmc.%s is required (in the host's bmc or its profile's)", h.Name, f.key)
		}
	}
	if b.Address == "" {
		return
	}
	if l := b.line["address"]; l != 0 {
		line = l
	}
	switch b.Type {
	case BMCIPMI:
		host, port := b.IPMIHostPort()
		if host == "" || strings.ContainsAny(host, "/ ") || port < 1 || port > 65535 {
			p.errorf(line, "host %s: bmc.address %q is not host or host:port", h.Name, b.Address)
		}
	case BMCRedfish:
		u, err := url.Parse(b.RedfishURL())
		switch {
		case err != nil || u.Host == "":
			p.errorf(line, "host %s: bmc.address %q is not host, host:port or an https:// URL", h.Name, b.Address)
		case u.Scheme != "https":
			p.errorf(line, "host %s: bmc.address %q: Redfish is spoken over https only (the password travels in it)", h.Name, b.Address)
		}
	}
	if b.Type == BMCIPMI && b.insecureSet && b.InsecureTLS {
		p.errorf(b.line["insecure_tls"], "host %s: bmc.insecure_tls applies to redfish BMCs only", h.Name)
	}
}

// HostsWithBMC lists the names of the hosts that have a BMC, sorted.
func (inv *Inventory) HostsWithBMC() []string {
	var out []string
	for _, name := range sortedKeys(inv.Hosts) {
		if inv.Hosts[name].BMC != nil {
			out = append(out, name)
		}
	}
	return out
}
