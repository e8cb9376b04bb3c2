package inventory

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// fullGood is good in full DHCP mode, with a static address for one host.
var fullGood = strings.Replace(strings.Replace(good, "  ipxe_dir:", `  dhcp:
    mode: full
    subnet: 10.99.0.0/24
    range: 10.99.0.100-10.99.0.199
    router: 10.99.0.254
    dns: [10.99.0.1, 10.99.0.2]
    domain: lab.example
    lease_time: 30m
  ipxe_dir:`, 1), "    mac: 52:54:00:12:34:01\n", "    mac: 52:54:00:12:34:01\n    ip: 10.99.0.11\n", 1)

func TestDHCPFull(t *testing.T) {
	inv, err := Load(fixture(t, fullGood))
	if err != nil {
		t.Fatal(err)
	}
	d := inv.Appliance.DHCP
	if !d.Full() || d.Subnet.String() != "10.99.0.0/24" || d.RangeStart.String() != "10.99.0.100" || d.RangeEnd.String() != "10.99.0.199" ||
		d.Router.String() != "10.99.0.254" || len(d.DNS) != 2 || d.Domain != "lab.example" || d.LeaseTime != 30*time.Minute {
		t.Fatalf("dhcp = %+v", d)
	}
	if ip := inv.Hosts["rack1-node01"].IP; ip != netip.MustParseAddr("10.99.0.11") {
		t.Errorf("host ip %v", ip)
	}
	if inv.Hosts["rack1-node02"].IP.IsValid() {
		t.Errorf("host without ip got %v", inv.Hosts["rack1-node02"].IP)
	}
	if !d.InPool(netip.MustParseAddr("10.99.0.150")) || d.InPool(netip.MustParseAddr("10.99.0.200")) {
		t.Error("InPool")
	}
	inv, err = Load(fixture(t, good))
	if err != nil || inv.Appliance.DHCP.Mode != DHCPProxy || inv.Appliance.DHCP.Full() {
		t.Fatalf("default mode: %+v %v", inv.Appliance.DHCP, err)
	}
	inv, err = Load(fixture(t, strings.Replace(good, "  ipxe_dir:", "  dhcp: proxy\n  ipxe_dir:", 1)))
	if err != nil || inv.Appliance.DHCP.Mode != DHCPProxy {
		t.Fatalf("dhcp: proxy: %+v %v", inv, err)
	}
}

// TestDHCPProblems checks each full-mode mistake is reported at its line.
func TestDHCPProblems(t *testing.T) {
	tests := []struct {
		name, from, to, want string
	}{
		{"bad mode", "    mode: full\n", "    mode: fulll\n", `7: appliance.dhcp "fulll" is neither "proxy" nor "full"`},
		{"bad range", "10.99.0.100-10.99.0.199", "10.99.0.100", `9: appliance.dhcp.range "10.99.0.100" is not START-END`},
		{"range backwards", "10.99.0.100-10.99.0.199", "10.99.0.199-10.99.0.100", `9: appliance.dhcp.range "10.99.0.199-10.99.0.100" ends before it starts`},
		{"range outside subnet", "10.99.0.100-10.99.0.199", "10.99.0.100-10.99.1.10", `6: appliance.dhcp.range 10.99.0.100-10.99.1.10 is not inside the subnet 10.99.0.0/24`},
		{"range holds appliance", "10.99.0.100-10.99.0.199", "10.99.0.1-10.99.0.9", `6: appliance.dhcp.range 10.99.0.1-10.99.0.9 holds the appliance's own address 10.99.0.1`},
		{"no range", "    range: 10.99.0.100-10.99.0.199\n", "", `6: appliance.dhcp.range is required in full mode`},
		{"bad subnet", "10.99.0.0/24", "10.99.0.0", `8: appliance.dhcp.subnet "10.99.0.0" is not an IPv4 network`},
		{"bad dns", "[10.99.0.1, 10.99.0.2]", "[10.99.0.1, fd00::1]", `11: appliance.dhcp.dns: "fd00::1" is not an IPv4 address`},
		{"bad lease", "30m", "30", `13: appliance.dhcp.lease_time "30" is not a duration`},
		{"address outside", "    subnet: 10.99.0.0/24\n", "    subnet: 10.98.0.0/16\n", `6: appliance.address 10.99.0.1 is not inside appliance.dhcp.subnet 10.98.0.0/16`},
		{"router outside", "router: 10.99.0.254", "router: 10.98.0.254", `6: appliance.dhcp.router 10.98.0.254 is not inside the subnet`},
		{"ip in pool", "ip: 10.99.0.11", "ip: 10.99.0.150", `23: host rack1-node01: ip 10.99.0.150 is inside the dynamic range 10.99.0.100-10.99.0.199`},
		{"ip outside subnet", "ip: 10.99.0.11", "ip: 10.98.0.11", `23: host rack1-node01: ip 10.98.0.11 is not inside the subnet 10.99.0.0/24`},
		{"ip malformed", "ip: 10.99.0.11", "ip: 10.99.0.300", `23: host rack1-node01: ip "10.99.0.300" is not an IPv4 address`},
		{"ip is appliance", "ip: 10.99.0.11", "ip: 10.99.0.1", `23: host rack1-node01: ip 10.99.0.1 is the appliance's or the router's address`},
		{"ip is broadcast", "ip: 10.99.0.11", "ip: 10.99.0.255", `23: host rack1-node01: ip 10.99.0.255 is the subnet's network or broadcast address`},
		{"ip duplicate", "    mac: 52-54-00-12-34-02\n", "    mac: 52-54-00-12-34-02\n    ip: 10.99.0.11\n", `27: host rack1-node02: ip 10.99.0.11 is already used by host rack1-node01 (line 23)`},
		{"unknown dhcp key", "    domain: lab.example\n", "    domian: lab.example\n", `12: unknown key "domian" in appliance.dhcp`},
		{"no mode", "    mode: full\n", "", `6: appliance.dhcp.mode is required`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(fullGood, tc.from) {
				t.Fatalf("fixture lacks %q", tc.from)
			}
			path := fixture(t, strings.Replace(fullGood, tc.from, tc.to, 1))
			_, err := Load(path)
			if err == nil || !strings.Contains(err.Error(), path+":"+tc.want) {
				t.Fatalf("Load: %v\nwant %q", err, tc.want)
			}
		})
	}
	path := fixture(t, strings.Replace(good, "    mac: 52:54:00:12:34:01\n", "    mac: 52:54:00:12:34:01\n    ip: 10.99.0.11\n", 1))
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path+`:15: host rack1-node01: ip needs appliance.dhcp mode "full"`) {
		t.Fatalf("ip in proxy mode: %v", err)
	}
}
