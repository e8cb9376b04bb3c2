package proxydhcp

import (
	"bytes"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// TestSecureBootFile: the UEFI x64 PXE firmware of a secure_boot host is
// handed the signed shim, on port 67 and on 4011; its other firmware, and
// other hosts, keep their iPXE binaries; without a shim it gets no answer.
func TestSecureBootFile(t *testing.T) {
	env := testEnv(false)
	env.SecureBoot = func(mac net.HardwareAddr) bool { return bytes.Equal(mac, knownMAC) }
	env.ShimFile = "shimx64.efi"
	plain := testEnv(false)
	plain.Boots = func(net.HardwareAddr) bool { return true }
	plain.SecureBoot = env.SecureBoot
	plain.ShimFile = env.ShimFile
	ipxe := []dhcpv4.Modifier{dhcpv4.WithUserClass("iPXE", false)}
	tests := []struct {
		name string
		mods []dhcpv4.Modifier
		port int
		env  Env
		want string // boot file, or "" for no answer
	}{
		{"efi x64 discover", discover(knownMAC, pxe(iana.EFI_X86_64)...), PortDHCP, env, "shimx64.efi"},
		{"efi bc discover", discover(knownMAC, pxe(iana.EFI_BC)...), PortDHCP, env, "shimx64.efi"},
		{"efi x64 request on 4011", request(knownMAC, pxe(iana.EFI_X86_64)...), PortPXE, env, "shimx64.efi"},
		{"bios of the same host", discover(knownMAC, pxe(iana.INTEL_X86PC)...), PortDHCP, env, "undionly.kpxe"},
		{"iPXE of the same host", discover(knownMAC, cat(pxe(iana.INTEL_X86PC), ipxe...)...), PortDHCP, env, "http://10.99.0.1:8080/boot/52:54:00:12:34:01.ipxe"},
		{"another host's efi x64", discover(otherMAC, pxe(iana.EFI_X86_64)...), PortDHCP, plain, "ipxe.efi"},
		{"unknown MAC", discover(otherMAC, pxe(iana.EFI_X86_64)...), PortDHCP, env, ""},
		{"no shim", discover(knownMAC, pxe(iana.EFI_X86_64)...), PortDHCP, func() Env { e := env; e.ShimFile = ""; return e }(), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Decide(mustNew(t, tc.mods...), tc.port, tc.env)
			if tc.want == "" {
				if _, ok := IsIgnore(err); !ok {
					t.Fatalf("Decide = %+v, %v; want no answer", d, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.BootFile != tc.want || d.Reply.BootFileName != tc.want {
				t.Errorf("boot file %q (reply %q), want %q", d.BootFile, d.Reply.BootFileName, tc.want)
			}
		})
	}
}
