package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// IPMISimOptions configures StartIPMISim.
type IPMISimOptions struct {
	// Name names the simulator's folder and its VM; [A-Za-z0-9_-]+.
	Name string
	// Addr and Port are where it serves IPMI 2.0 over LAN (UDP), inside
	// the appliance namespace.
	Addr string
	Port int
	// User and Password of its one account, with operator privilege
	// (power control and boot options, not the BMC's configuration).
	User, Password string
	// VM is the BIOS machine whose power it controls (Firmware is ignored).
	VM VMOptions
}

// IPMISim is OpenIPMI's BMC simulator (ipmi_sim, Debian's openipmi)
// serving a VM's power over IPMI LAN. Its chassis_control program (a shell
// script written here) starts qemu on "power up" and kills it on "power
// down", and keeps the boot device the BMC was told: a power-up with the
// boot device set to PXE boots the VM from its NIC's iPXE ROM once (and
// sets the device back to default, as a one-time boot flag is); any other
// power-up boots a VM whose NIC has no boot ROM, which finds nothing to
// boot. The VM is not started until the BMC is told to power up.
type IPMISim struct {
	VM  *VM
	dir string
	p   *proc
}

// StartIPMISim writes the simulator's configuration and starts it in the
// appliance namespace.
func (l *Lab) StartIPMISim(ctx context.Context, o IPMISimOptions) (*IPMISim, error) {
	if !vmNameRE.MatchString(o.Name) {
		return nil, fmt.Errorf("lab: bad simulator name %q", o.Name)
	}
	dir := filepath.Join(l.dir, "bmc-"+o.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	o.VM.Name = o.Name
	v, args, noBoot, err := l.poweredArgs(ctx, o.VM)
	if err != nil {
		return nil, err
	}
	files := map[string]string{
		"run-pxe.sh":   "exec qemu-system-x86_64 " + shellJoin(args) + "\n",
		"run-nopxe.sh": "exec qemu-system-x86_64 " + shellJoin(noBoot) + "\n",
		"chassis.sh":   chassisScript(dir, v.qemuLogPath),
		"boot":         "default\n",
		"lan.conf":     ipmiLanConf(o, dir),
		"emu.cmds":     "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable 0x20\n",
	}
	if err := writeBMCFiles(dir, files); err != nil {
		return nil, err
	}
	p, err := startProc(ctx, l.log, filepath.Join(dir, "ipmi_sim.log"), "ip", "netns", "exec", l.appNS,
		"ipmi_sim", "-n", "-c", filepath.Join(dir, "lan.conf"), "-f", filepath.Join(dir, "emu.cmds"), "-s", dir)
	if err != nil {
		return nil, err
	}
	s := &IPMISim{VM: v, dir: dir, p: p}
	// Serving once its UDP socket is bound.
	deadline := time.Now().Add(10 * time.Second)
	for !s.listening(o.Port) {
		if p.exited() || time.Now().After(deadline) {
			p.kill()
			return nil, fmt.Errorf("lab: ipmi_sim %s did not start:\n%s", o.Name, readFile(filepath.Join(dir, "ipmi_sim.log")))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s, nil
}

// listening reports whether ipmi_sim has bound its UDP port (seen in the
// namespace's /proc/net/udp through the simulator's own process).
func (s *IPMISim) listening(port int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/udp", s.p.cmd.Process.Pid))
	return err == nil && strings.Contains(string(b), fmt.Sprintf(":%04X ", port))
}

// Running reports whether the simulator's VM (qemu) is running.
func (s *IPMISim) Running() bool {
	b, err := os.ReadFile(filepath.Join(s.dir, "pid"))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return false
	}
	return syscall.Kill(pid, 0) == nil && !isZombiePid(pid)
}

// Starts is how many times the VM was started, and how many of those
// booted from the network.
func (s *IPMISim) Starts() (all, pxe int) {
	log := readFile(filepath.Join(s.dir, "starts"))
	return strings.Count(log, "start "), strings.Count(log, "start pxe")
}

// BreakNetworkBoot makes the machine fail to boot from the network from
// now on, as a host with a dead NIC or a broken boot order would: the BMC
// still answers and powers it, but a power-up asked to boot from the
// network starts the VM without its network boot (it sits in its
// firmware, finding nothing to boot).
func (s *IPMISim) BreakNetworkBoot() error {
	return os.WriteFile(filepath.Join(s.dir, "nonet"), nil, 0o644)
}

// Log is ipmi_sim's output and the chassis program's record.
func (s *IPMISim) Log() string {
	return readFile(filepath.Join(s.dir, "ipmi_sim.log")) + readFile(filepath.Join(s.dir, "starts"))
}

// Stop kills the simulator (the lab's Close kills its VM).
func (s *IPMISim) Stop() {
	s.p.kill()
	<-s.p.done
}

func isZombiePid(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err != nil || isZombie(b)
}

// vmCommand makes a tap for a VM and returns it with the qemu arguments
// StartVM would run, for a VM another program starts.
func (l *Lab) vmCommand(ctx context.Context, o VMOptions) (*VM, []string, error) {
	l.mu.Lock()
	n := l.nextVM
	l.nextVM++
	l.mu.Unlock()
	if o.MAC == "" {
		o.MAC = fmt.Sprintf("52:54:00:99:%02x:%02x", (n>>8)&0xff, n&0xff)
	}
	if o.MemoryMB == 0 {
		o.MemoryMB = 256
	}
	tap, err := l.addTap(ctx)
	if err != nil {
		return nil, nil, err
	}
	v := &VM{
		Name: o.Name, MAC: o.MAC, Tap: tap, Firmware: o.Firmware,
		consolePath:     filepath.Join(l.dir, o.Name+".console.log"),
		qemuLogPath:     filepath.Join(l.dir, o.Name+".qemu.log"),
		firmwareLogPath: filepath.Join(l.dir, o.Name+".firmware.log"),
	}
	args, err := l.qemuArgs(o, v)
	return v, args, err
}

// poweredArgs makes a tap for a BIOS VM and returns the qemu arguments to
// boot it from the network (its NIC's iPXE ROM) and to start it with
// nothing to boot (a NIC without a boot ROM, no disk).
func (l *Lab) poweredArgs(ctx context.Context, o VMOptions) (v *VM, pxe, noBoot []string, err error) {
	o.Firmware = BIOS
	v, pxe, err = l.vmCommand(ctx, o)
	if err != nil {
		return nil, nil, nil, err
	}
	noBoot = make([]string, len(pxe))
	for i, a := range pxe {
		switch {
		case strings.HasPrefix(a, "virtio-net-pci,"):
			a += ",romfile="
		case a == "n" && i > 0 && pxe[i-1] == "-boot":
			a = "c"
		}
		noBoot[i] = a
	}
	return v, pxe, noBoot, nil
}

// PoweredVM is a VM that a simulated BMC switches on and off: On starts
// qemu in the appliance namespace, from the network or with nothing to
// boot; Off kills it.
type PoweredVM struct {
	VM          *VM
	l           *Lab
	ctx         context.Context
	pxe, noBoot []string

	mu     sync.Mutex
	p      *proc
	starts []bool // pxe of each start
}

// NewPoweredVM prepares a BIOS VM (a tap on br0) without starting it. ctx
// bounds the life of every qemu it starts.
func (l *Lab) NewPoweredVM(ctx context.Context, o VMOptions) (*PoweredVM, error) {
	v, pxe, noBoot, err := l.poweredArgs(ctx, o)
	if err != nil {
		return nil, err
	}
	return &PoweredVM{VM: v, l: l, ctx: ctx, pxe: pxe, noBoot: noBoot}, nil
}

// On starts the VM unless it runs.
func (m *PoweredVM) On(pxe bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.p != nil && !m.p.exited() {
		return nil
	}
	args := m.noBoot
	if pxe {
		args = m.pxe
	}
	p, err := startProc(m.ctx, m.l.log, m.VM.qemuLogPath, "ip", append([]string{"netns", "exec", m.l.appNS, "qemu-system-x86_64"}, args...)...)
	if err != nil {
		return err
	}
	m.p, m.VM.p = p, p
	m.starts = append(m.starts, pxe)
	return nil
}

// Off kills the VM and waits for it to be gone.
func (m *PoweredVM) Off() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.p != nil {
		m.p.kill()
		<-m.p.done
	}
	return nil
}

// Running reports whether qemu runs.
func (m *PoweredVM) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.p != nil && !m.p.exited()
}

// Starts lists each start so far: true for a network boot.
func (m *PoweredVM) Starts() []bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]bool(nil), m.starts...)
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// ipmiLanConf is ipmi_sim's configuration (see ipmi_lan(5)): one BMC,
// IPMI 2.0 over LAN at Addr:Port, one operator, the chassis program.
// writeBMCFiles writes the simulator's files into dir, each with its mode
// (bmcFileMode), also over a file an earlier run left.
func writeBMCFiles(dir string, files map[string]string) error {
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), bmcFileMode(name)); err != nil {
			return fmt.Errorf("lab: BMC simulator file: %w", err)
		}
		if err := os.Chmod(p, bmcFileMode(name)); err != nil {
			return fmt.Errorf("lab: BMC simulator file: %w", err)
		}
	}
	return nil
}

// bmcFileMode is the mode of a file of the simulator's folder: lan.conf
// holds the BMC password, only the scripts run.
func bmcFileMode(name string) os.FileMode {
	switch {
	case name == "lan.conf":
		return 0o600
	case strings.HasSuffix(name, ".sh"):
		return 0o755
	}
	return 0o644
}

func ipmiLanConf(o IPMISimOptions, dir string) string {
	return fmt.Sprintf(`name "%s"
set_working_mc 0x20
  startlan 1
    addr %s %d
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "%s"
  user 2 true "%s" "%s" operator 10 none md2 md5 straight
`, o.Name, o.Addr, o.Port, filepath.Join(dir, "chassis.sh"), o.User, o.Password)
}

// chassisScript is ipmi_sim's chassis_control program: called as
// `chassis.sh get NAME...` (prints NAME:VALUE lines) or `chassis.sh set
// NAME VALUE...` for power (1 up, 0 down), reset and boot (none, pxe,
// default, cdrom, bios).
func chassisScript(dir, qemuLog string) string {
	return fmt.Sprintf(`#!/bin/sh
D=%q
running() { [ -f "$D/pid" ] && kill -0 "$(cat "$D/pid")" 2>/dev/null && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$(cat "$D/pid")/stat" 2>/dev/null; }
start() {
	running && return 0
	if [ "$(cat "$D/boot")" = pxe ] && [ -f "$D/nonet" ]; then
		echo default > "$D/boot"; run=run-nopxe.sh; echo "start nopxe (network boot broken)" >> "$D/starts"
	elif [ "$(cat "$D/boot")" = pxe ]; then
		echo default > "$D/boot"; run=run-pxe.sh; echo "start pxe" >> "$D/starts"
	else
		run=run-nopxe.sh; echo "start nopxe" >> "$D/starts"
	fi
	sh "$D/$run" >> %q 2>&1 < /dev/null 9>&- &
	echo $! > "$D/pid"
}
stop() {
	running || return 0
	kill -9 "$(cat "$D/pid")"
	# A loaded machine takes seconds to tear a VM down: a power-up that
	# found it still there would start nothing.
	i=0; while running && [ $i -lt 150 ]; do sleep 0.2; i=$((i+1)); done
	echo "stop" >> "$D/starts"
}
# One operation at a time: ipmi_sim may ask for the power-up of a power
# cycle while the power-down still runs. (The VM does not inherit the lock.)
exec 9>"$D/lock"
flock 9
op=$1; shift
if [ "$op" = get ]; then
	for n in "$@"; do
		case $n in
		power) if running; then echo power:1; else echo power:0; fi ;;
		boot) echo "boot:$(cat "$D/boot")" ;;
		esac
	done
	exit 0
fi
while [ $# -ge 2 ]; do
	n=$1; v=$2; shift 2
	case $n in
	power) if [ "$v" = 1 ]; then start; else stop; fi ;;
	reset) stop; start ;;
	boot) echo "$v" > "$D/boot" ;;
	shutdown) stop ;;
	esac
done
exit 0
`, dir, qemuLog)
}
