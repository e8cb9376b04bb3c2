package node

import (
	"strings"
	"testing"
	"time"
)

func TestParseCmdline(t *testing.T) {
	p, err := ParseCmdline("initrd=node-initrd.cpio.gz initrd=modules console=ttyS0 moobi.server=http://10.99.0.1:8080/ moobi.mac=52:54:00:12:34:01 moobi.hostname=rack1-node01 moobi.version=v3 moobi.boot=19a.0f.ab moobi.reboot_after=2m\n")
	if err != nil {
		t.Fatal(err)
	}
	if p.Server != "http://10.99.0.1:8080" || p.MAC.String() != "52:54:00:12:34:01" || p.Hostname != "rack1-node01" || p.Version != "v3" || p.BootToken != "19a.0f.ab" || p.RebootAfter != 2*time.Minute || p.Init != "/sbin/init" {
		t.Fatalf("params %+v", p)
	}
	for _, bad := range []struct{ cmdline, want string }{
		{"console=ttyS0", "lacks moobi.server"},
		{"moobi.server=ftp://x moobi.mac=52:54:00:12:34:01", "not an http"},
		{"moobi.server=http://x moobi.mac=zz", "not a MAC"},
		{"moobi.server=http://x moobi.mac=52:54:00:12:34:01 moobi.init=sbin/init", "not an absolute path"},
		{"moobi.server=http://x moobi.mac=52:54:00:12:34:01 moobi.reboot_after=-1s", "not a duration"},
	} {
		if _, err := ParseCmdline(bad.cmdline); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ParseCmdline(%q) = %v, want an error saying %q", bad.cmdline, err, bad.want)
		}
	}
}

func FuzzParseCmdline(f *testing.F) {
	f.Add("moobi.server=http://10.99.0.1:8080 moobi.mac=52:54:00:12:34:01 moobi.hostname=a")
	f.Add("moobi.reboot_after=1h moobi.init=/init")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseCmdline(s)
		if err == nil && (p.Server == "" || len(p.MAC) != 6 || !strings.HasPrefix(p.Init, "/") || p.RebootAfter <= 0) {
			t.Fatalf("accepted %q as %+v", s, p)
		}
	})
}
