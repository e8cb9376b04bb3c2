package main

// The boot section's medians and markdown report.

import (
	"fmt"
	"sort"
	"strings"

	"moobi/lab"
)

// done is the end of the boot: r.end, by default running for moobi and
// the marker for the reference.
func (r bootRun) done() float64 {
	switch {
	case r.end != "":
		return r.at[r.end]
	case r.server == "moobi":
		return r.at["running"]
	}
	return r.at["marker"]
}

func (r bootRun) summary() string {
	what := map[string]string{"running": "to running", "marker": "to the initramfs marker", "target": "to getty.target"}[r.end]
	return fmt.Sprintf("%s %s: %.1f s %s, /init at %.1f s", r.firmware, r.server, r.done(), what, r.at["init"])
}

// bootMedian is the run with the median time to done.
func bootMedian(runs []bootRun, server string, fw lab.Firmware) (bootRun, bool) {
	var rs []bootRun
	for _, r := range runs {
		if r.server == server && r.firmware == fw {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return bootRun{}, false
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].done() < rs[j].done() })
	return rs[(len(rs)-1)/2], true
}

// bootGoalLink is the link rate of the boot goal: the image's transfer
// time at it is part of what a boot may take beyond the reference's.
const bootGoalLink = 1e9 // bit/s

// bootTargets are the boot goal's pass/fail lines, one per firmware with
// boots by both servers: moobi's median time to running at most the
// reference's median time to its marker, plus the image's transfer at
// bootGoalLink, plus 5 s.
func bootTargets(fws []lab.Firmware, runs []bootRun, imageSize int64) []target {
	var ts []target
	for _, fw := range fws {
		m, okM := bootMedian(runs, "moobi", fw)
		d, okD := bootMedian(runs, "dnsmasq", fw)
		if !okM || !okD {
			continue
		}
		goal := d.done() + float64(imageSize)*8/bootGoalLink + 5
		ts = append(ts, target{
			what:  fmt.Sprintf("boot, %s: power-on → `running` ≤ the reference's marker + transfer at 1 Gbit/s + 5 s", strings.ToUpper(fw.String())),
			moobi: fmt.Sprintf("%.2f s", m.done()), ref: fmt.Sprintf("%.2f s", goal),
			ratio: fmt.Sprintf("%.2f×", m.done()/goal), pass: m.done() <= goal, section: "boot",
		})
	}
	return ts
}

// bootPhaseRows are the table's phases: appliance states, measured for the
// reference between the same milestones.
var bootPhaseRows = []bootSpanRow{
	{"power-on → first proxy DHCP answer (firmware starts, NIC ROM / PXE)", "", "dhcp"},
	{"`dhcp`: → iPXE running (TFTP of the iPXE binary; BIOS: iPXE ROM fetches its script)", "dhcp", "ipxe"},
	{"`firmware`: iPXE → kernel requested (script, HTTP)", "ipxe", "kernel"},
	{"`kernel`: → node client fetching (moobi) / initramfs marker (reference)", "kernel", "kernel-end"},
	{"  of which kernel and initramfs download (HTTP)", "kernel", "fetched"},
	{"  of which iPXE hand-over → Linux's console up (decompression, early start)", "fetched", "linux"},
	{"  of which Linux's console → /init (initramfs unpacked)", "linux", "init"},
	{"  of which /init → marker (reference)", "init", "marker"},
	{"  of which /init → network drivers loaded (moobi)", "init", "modules"},
	{"  of which → boot config verified (moobi: DHCP, signed boot config; other modules load meanwhile)", "modules", "config"},
	{"  of which → node client reports fetching (moobi: torrent set-up)", "config", "fetching"},
	{"  /init → every kernel module loaded (moobi; overlaps the rows above and below)", "init", "modules-all"},
	{"`fetching`: image over BitTorrent, verified", "fetching", "verified"},
	{"`verified`: mount, switch_root → `running`", "verified", "running"},
}

func bootSpan(r bootRun, from, to string) (float64, bool) {
	if to == "kernel-end" {
		to = "fetching"
		if r.server != "moobi" {
			to = "marker"
		}
	}
	b, ok1 := r.at[to]
	a, ok2 := 0.0, true
	if from != "" {
		a, ok2 = r.at[from]
	}
	return b - a, ok1 && ok2
}

func bootCell(v float64, ok bool) string {
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%.2f", v)
}

func bootReport(f *bootFlags, a *bootAssets, fws []lab.Firmware, runs []bootRun) string {
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format, args...) }
	p("## Boot: one VM from power-on to a running system, moobi vs dnsmasq + nginx\n\n")
	p("One qemu VM (TCG, no KVM, %d MB), console on ttyS0, Debian's cloud kernel, in a fresh lab per boot (site dnsmasq handing out addresses only). "+
		"**moobi** boots an image profile: a %s squashfs (%d MiB of random data) over BitTorrent by the node initramfs, verified, mounted, switch_root. "+
		"**dnsmasq + nginx** is the usual setup beside a site DHCP server: dnsmasq as proxy DHCP and TFTP server for the iPXE binary, iPXE (user class `iPXE`) sent to a script on nginx, "+
		"which serves the kernel and a %s initramfs that carries the same squashfs (busybox `/init` prints a marker). "+
		"%d boot%s per firmware and server, alternating; the median boot (by time to the end) is shown. Seconds; power-on is qemu's start.\n\n",
		bootMemoryMB(a, f.imageMiB), size(a.imageSize), f.imageMiB, size(a.refInitrdSize), f.repeat, plural(f.repeat))
	for _, fw := range fws {
		m, ok1 := bootMedian(runs, "moobi", fw)
		d, ok2 := bootMedian(runs, "dnsmasq", fw)
		if !ok1 || !ok2 {
			continue
		}
		p("### %s (%s)\n\n", strings.ToUpper(fw.String()), map[lab.Firmware]string{lab.BIOS: "SeaBIOS, iPXE as the NIC's ROM", lab.UEFI: "OVMF's own PXE, then ipxe.efi over TFTP"}[fw])
		p("| phase | moobi seconds | dnsmasq+HTTP seconds |\n|---|---:|---:|\n")
		writeBootSpans(&w, bootPhaseRows, bootSpan, m, d)
		mi, miok := m.at["init"]
		di, diok := d.at["init"]
		p("| **total to /init** | **%s** | **%s** |\n", bootCell(mi, miok), bootCell(di, diok))
		p("| **total to running (moobi) / to the initramfs marker (reference)** | **%s** | **%s** |\n\n", bootCell(m.done(), m.done() > 0), bootCell(d.done(), d.done() > 0))

		p("Milestones, seconds after power-on:\n\n| milestone | moobi | dnsmasq+HTTP |\n|---|---:|---:|\n")
		for _, ms := range bootMilestones {
			mv, mok := m.at[ms.key]
			dv, dok := d.at[ms.key]
			if !mok && !dok {
				continue
			}
			p("| %s | %s | %s |\n", ms.label, bootCell(mv, mok), bootCell(dv, dok))
		}
		p("\n")
		writeBootTimeline(&w, bootMAC(fw), m)
	}
	writeEveryBoot(&w, runs)
	p("\nmoobi's phases are the appliance's own timeline; the reference's come from dnsmasq's log (`PXE(br0) MAC proxy`, `sent FILE to ADDR`), stamped by the bench as each line arrives, nginx's access log (`$msec`, `$request_time`), " +
		"and the serial console, each line stamped when the bench saw it (polled every 20 ms). Linux's console comes up when the kernel registers ttyS0, after decompression and early setup (printk's own clock is no use under TCG: it drifts from the host's). " +
		"Under TCG every CPU-bound step (decompressing the kernel and the initramfs, hashing the image) is many times slower than on hardware.\n")
	return w.String()
}
