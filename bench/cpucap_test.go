package main

import (
	"bufio"
	"strings"
	"testing"
)

func TestParseProcCgroup(t *testing.T) {
	const hybrid = "9:name=systemd:/\n4:memory:/process_api/02da\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/bench\n0::/\n"
	const joined = "5:cpu,cpuacct:/user.slice\n0::/user.slice/session-1.scope\n"
	const unified = "0::/system.slice/ssh.service\n"
	for _, tc := range []struct {
		name, in string
		v2       bool
		want     string
		err      bool
	}{
		{"v1 cpu alone", hybrid, false, "/bench", false},
		{"v2 line of a hybrid machine", hybrid, true, "/", false},
		{"v1 cpu with cpuacct", joined, false, "/user.slice", false},
		{"v2 only", unified, true, "/system.slice/ssh.service", false},
		{"v1 wanted, none there", unified, false, "", true},
		{"garbage", "no colons here\n1:cpuset\n", false, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcCgroup(bufio.NewScanner(strings.NewReader(tc.in)), tc.v2)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("parseProcCgroup(v2=%v) = %q, %v; want %q (error: %v)", tc.v2, got, err, tc.want, tc.err)
			}
		})
	}
}
