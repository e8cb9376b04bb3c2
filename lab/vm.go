package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
)

// Firmware selects how a VM boots.
type Firmware int

const (
	// BIOS: SeaBIOS network boot (-boot n); iPXE (efi-virtio.rom from
	// ipxe-qemu) is the NIC option ROM, so the first DHCP comes from iPXE.
	BIOS Firmware = iota
	// UEFI: OVMF on q35 with the NIC ROM disabled, so OVMF's own UEFI PXE
	// client does the network boot.
	UEFI
	// Direct: qemu loads Kernel/Initrd/Append itself; no network boot (the
	// VM still gets a NIC on br0).
	Direct
	// UEFISecureBoot: UEFI with Secure Boot enforced: OVMF's Secure Boot
	// build (SMM, secure flash) with Microsoft's keys enrolled, so only
	// code signed by Microsoft's UEFI CA (such as shim) runs. OVMF says
	// on the console what it refuses ("BdsDxe: failed to load Boot0001
	// ...: Access Denied").
	UEFISecureBoot
)

func (f Firmware) String() string {
	switch f {
	case BIOS:
		return "bios"
	case UEFI:
		return "uefi"
	case Direct:
		return "direct"
	case UEFISecureBoot:
		return "uefi-secureboot"
	}
	return "Firmware(" + strconv.Itoa(int(f)) + ")"
}

// OVMF firmware files (Debian package ovmf, 4 MiB flash layout).
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	// OVMFSecureCode and OVMFSecureVars: the Secure Boot build and a
	// variable store with Microsoft's keys enrolled and Secure Boot on.
	OVMFSecureCode = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
	OVMFSecureVars = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
)

// VMOptions configures StartVM.
type VMOptions struct {
	// Name names the VM's log files; default "vm<N>". Must match [A-Za-z0-9_-]+.
	Name string
	// MAC of the VM's virtio NIC; default 52:54:00:99:<lab-local counter>.
	MAC      string
	Firmware Firmware
	// MemoryMB defaults to 256.
	MemoryMB int
	// Kernel, Initrd and Append are used only with Direct (Initrd and
	// Append are optional). Convention: "console=ttyS0 panic=-1".
	Kernel, Initrd, Append string
	// DiskPath, if set, is attached as a raw virtio disk.
	DiskPath string
	// ExtraArgs are appended to the qemu command line.
	ExtraArgs []string
}

// VM is a running qemu VM.
type VM struct {
	Name     string
	MAC      string
	Tap      string // tap device in the appliance namespace
	Firmware Firmware

	consolePath string
	qemuLogPath string
	// firmwareLogPath receives SeaBIOS's debug log (BIOS VMs only).
	firmwareLogPath string
	p               *proc
}

var vmNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// StartVM creates a tap on br0 and starts qemu (TCG, -no-reboot, serial
// console to a file, virtio-net and virtio-rng) inside the appliance
// namespace. The VM is killed when ctx ends, on Stop and on Lab.Close, so
// pass a context bounding the VM's whole life, not just its start.
func (l *Lab) StartVM(ctx context.Context, o VMOptions) (*VM, error) {
	l.mu.Lock()
	n := l.nextVM
	l.nextVM++
	l.mu.Unlock()
	if o.Name == "" {
		o.Name = fmt.Sprintf("vm%d", n)
	}
	if !vmNameRE.MatchString(o.Name) {
		return nil, fmt.Errorf("lab: bad VM name %q", o.Name)
	}
	if o.MAC == "" {
		o.MAC = fmt.Sprintf("52:54:00:99:%02x:%02x", (n>>8)&0xff, n&0xff)
	}
	if o.MemoryMB == 0 {
		o.MemoryMB = 256
	}
	if o.Firmware == Direct && o.Kernel == "" {
		return nil, errors.New("lab: Direct VM needs Kernel")
	}
	tap, err := l.addTap(ctx)
	if err != nil {
		return nil, err
	}
	v := &VM{
		Name: o.Name, MAC: o.MAC, Tap: tap, Firmware: o.Firmware,
		consolePath:     filepath.Join(l.dir, o.Name+".console.log"),
		qemuLogPath:     filepath.Join(l.dir, o.Name+".qemu.log"),
		firmwareLogPath: filepath.Join(l.dir, o.Name+".firmware.log"),
	}
	os.Remove(v.consolePath)
	os.Remove(v.firmwareLogPath)
	args, err := l.qemuArgs(o, v)
	if err != nil {
		return nil, err
	}
	p, err := startProc(ctx, l.log, v.qemuLogPath, "ip",
		append([]string{"netns", "exec", l.appNS, "qemu-system-x86_64"}, args...)...)
	if err != nil {
		return nil, err
	}
	v.p = p
	l.mu.Lock()
	l.vms = append(l.vms, v)
	closed := l.closed
	l.mu.Unlock()
	if closed { // raced with Close
		p.kill()
		return nil, errors.New("lab: closed")
	}
	return v, nil
}

func (l *Lab) qemuArgs(o VMOptions, v *VM) ([]string, error) {
	args := []string{
		"-name", o.Name,
		"-accel", "tcg", "-cpu", "max",
		"-m", strconv.Itoa(o.MemoryMB),
		"-nodefaults", "-display", "none", "-no-reboot",
		"-serial", "file:" + v.consolePath,
		"-device", "virtio-rng-pci",
		"-netdev", "tap,id=n0,ifname=" + v.Tap + ",script=no,downscript=no",
	}
	nic := "virtio-net-pci,netdev=n0,mac=" + o.MAC
	switch o.Firmware {
	case BIOS:
		// SeaBIOS (and not iPXE) writes its log to the debug port 0x402.
		args = append(args, "-device", nic, "-boot", "n",
			"-chardev", "file,id=fwlog,path="+v.firmwareLogPath,
			"-device", "isa-debugcon,iobase=0x402,chardev=fwlog")
	case UEFI:
		vars := filepath.Join(l.dir, o.Name+".OVMF_VARS.fd")
		if err := copyFile(OVMFVars, vars, 0o644); err != nil {
			return nil, err
		}
		args = append(args, "-machine", "q35",
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars,
			"-device", nic+",bootindex=1,romfile=")
	case UEFISecureBoot:
		vars := filepath.Join(l.dir, o.Name+".OVMF_VARS.fd")
		if err := copyFile(OVMFSecureVars, vars, 0o644); err != nil {
			return nil, err
		}
		// The Secure Boot build keeps its variables in SMM-protected
		// flash: without SMM and a secure pflash it does not start.
		args = append(args, "-machine", "q35,smm=on",
			"-global", "driver=cfi.pflash01,property=secure,value=on",
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OVMFSecureCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars,
			"-device", nic+",bootindex=1,romfile=")
	case Direct:
		args = append(args, "-device", nic+",romfile=", "-kernel", o.Kernel)
		if o.Initrd != "" {
			args = append(args, "-initrd", o.Initrd)
		}
		if o.Append != "" {
			args = append(args, "-append", o.Append)
		}
	default:
		return nil, fmt.Errorf("lab: unknown firmware %v", o.Firmware)
	}
	if o.DiskPath != "" {
		args = append(args, "-drive", "file="+o.DiskPath+",if=virtio,format=raw")
	}
	return append(args, o.ExtraArgs...), nil
}

// ConsolePath returns the path of the serial console log.
func (v *VM) ConsolePath() string { return v.consolePath }

// QemuLogPath returns the path of qemu's own stdout/stderr log.
func (v *VM) QemuLogPath() string { return v.qemuLogPath }

// Console returns the serial console output so far.
func (v *VM) Console() string { return readFile(v.consolePath) }

// QemuLog returns qemu's own stdout/stderr so far.
func (v *VM) QemuLog() string { return readFile(v.qemuLogPath) }

// FirmwareLog returns SeaBIOS's debug log so far (BIOS VMs only; iPXE and
// SeaBIOS do not print to the serial console, so Console stays empty until
// a booted OS writes to ttyS0).
func (v *VM) FirmwareLog() string { return readFile(v.firmwareLogPath) }

// WaitConsole polls the serial console until it contains s. It fails when
// ctx ends or the VM exits first; the error includes the console's tail.
func (v *VM) WaitConsole(ctx context.Context, s string) error {
	err := waitFile(ctx, v.consolePath, s, "VM "+v.Name+" console", v.p)
	if err != nil && v.p.exited() {
		err = fmt.Errorf("%w\nqemu log:\n%s", err, Tail(v.QemuLog(), 10))
	}
	return err
}

// Done is closed when qemu has exited.
func (v *VM) Done() <-chan struct{} { return v.p.done }

// Wait waits for qemu to exit and returns its exit error (nil when the guest
// powered off or, with -no-reboot, rebooted/panicked with panic=-1).
func (v *VM) Wait() error {
	<-v.p.done
	return v.p.err
}

// Stop kills qemu and waits for it to exit (Wait then reports the kill).
func (v *VM) Stop() error {
	v.p.kill()
	<-v.p.done
	return nil
}

func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
