package inventory

import (
	"fmt"
	"os"
	"regexp"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"

	"moobi/overlay"
)

// Identity is what a profile or a host adds to its nodes' writable root:
// hosts.yaml's overlay, vars and authorized_keys.
type Identity struct {
	// Overlay is a folder of files and text/template templates (*.tmpl)
	// rendered per node onto its root ("" for none).
	Overlay string
	// Vars are free-form template variables ({{.Vars.NAME}}).
	Vars map[string]string
	// AuthorizedKeys are SSH public keys (authorized_keys lines) for root.
	AuthorizedKeys []string
}

// NodeIdentity is a host's identity merged with its profile's.
type NodeIdentity struct {
	// OverlayDirs are the overlay folders, the profile's first, so that
	// the host's files win.
	OverlayDirs []string
	// Vars are the profile's vars with the host's over them.
	Vars map[string]string
	// AuthorizedKeys are the profile's keys and the host's.
	AuthorizedKeys []string
}

// Merged is the identity host h gets booting profile p.
func Merged(p *Profile, h *Host) NodeIdentity {
	m := NodeIdentity{Vars: map[string]string{}}
	for _, id := range []Identity{p.Identity, h.Identity} {
		if id.Overlay != "" {
			m.OverlayDirs = append(m.OverlayDirs, id.Overlay)
		}
		for k, v := range id.Vars {
			m.Vars[k] = v
		}
		m.AuthorizedKeys = append(m.AuthorizedKeys, id.AuthorizedKeys...)
	}
	return m
}

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// identity parses overlay, vars or authorized_keys of a profile or host
// (what names it, for messages).
func (p *parser) identity(key string, v *yaml.Node, id *Identity, what string) {
	switch key {
	case "overlay":
		dir := p.path(p.str(v, "overlay"))
		if dir == "" {
			return
		}
		if st, err := os.Stat(dir); err != nil {
			p.errorf(v.Line, "%s: overlay: %s", what, describeStatErr(dir, err))
		} else if !st.IsDir() {
			p.errorf(v.Line, "%s: overlay %s is not a folder", what, dir)
		}
		id.Overlay = dir
	case "vars":
		id.Vars = map[string]string{}
		p.mapping(v, what+" vars", nil, func(name string, k, val *yaml.Node) {
			if !varName.MatchString(name) {
				p.errorf(k.Line, "%s: var name %q: use letters, digits and '_', not starting with a digit (templates say {{.Vars.%s}})", what, name, name)
			}
			if val.Kind != yaml.ScalarNode || val.Tag == "!!null" {
				p.errorf(val.Line, "%s: var %s must be a string, number or boolean", what, name)
				return
			}
			id.Vars[name] = val.Value
		})
	case "authorized_keys":
		lines := p.strList(v, "authorized_keys")
		for i, line := range lines {
			if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err != nil {
				at := v.Line
				if v.Kind == yaml.SequenceNode && i < len(v.Content) {
					at = v.Content[i].Line
				}
				p.errorf(at, "%s: authorized_keys entry %d is not an SSH public key line (%v)", what, i+1, err)
			}
		}
		id.AuthorizedKeys = lines
	default:
		panic(fmt.Sprintf("inventory: identity key %q", key))
	}
}

// checkOverlays renders every host's overlay once, with placeholders for
// what only a boot knows (address, version), so that a template error or a
// var missing for some host shows now, at the host's line, and not on a
// booting node.
func (p *parser) checkOverlays(inv *Inventory) {
	for _, name := range sortedKeys(inv.Hosts) {
		h := inv.Hosts[name]
		pr := inv.Profiles[h.Profile]
		if pr == nil || pr.Direct() || h.MAC == nil {
			continue
		}
		id := Merged(pr, h)
		if len(id.OverlayDirs) == 0 {
			continue
		}
		_, _, err := overlay.Render(overlay.Spec{
			Node: overlay.Node{Name: h.Name, MAC: h.MAC.String(), Address: "0.0.0.0", Profile: pr.Name, Image: pr.Image,
				Version: "v0", MachineID: overlay.MachineID(h.Name), Appliance: "http://0.0.0.0", Vars: id.Vars},
			AuthorizedKeys: id.AuthorizedKeys, Dirs: id.OverlayDirs,
		})
		if err != nil {
			p.errorf(h.line, "host %s: %v", name, err)
		}
	}
}
