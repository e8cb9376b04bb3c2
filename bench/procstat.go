package main

// Readers of /proc: memory, CPU time of a process or process group, and the
// machine's idle time.

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func memAvailable() int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemAvailable:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// busyMeter measures the machine's busy share of its CPUs over an
// interval: one minus the idle time /proc/stat reports (idle and iowait)
// over the wall-clock time of all CPUs. The kernel accounts idle time
// exactly (at each idle entry and exit) and busy time by sampling at
// ticks, which misses most of a load that wakes a thousand times a second
// for a few microseconds; so the busy share is taken from the idle time.
type busyMeter struct {
	start time.Time
	idle  float64
}

func startBusyMeter() busyMeter { return busyMeter{time.Now(), idleSeconds()} }

// share is the busy share since start, from 0 to 1.
func (m busyMeter) share() float64 {
	wall := time.Since(m.start).Seconds() * float64(runtime.NumCPU())
	if wall <= 0 {
		return 0
	}
	return min(1, max(0, 1-(idleSeconds()-m.idle)/wall))
}

// idleSeconds is the machine's idle and iowait time (/proc/stat).
func idleSeconds() float64 {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var ticks int64
	for _, i := range []int{4, 5} { // cpu user nice system idle iowait
		if i < len(f) {
			n, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += n
		}
	}
	return float64(ticks) / 100 // USER_HZ
}

// procMemory is a process's VmRSS and VmHWM in bytes.
func procMemory(pid int) (rss, hwm int64) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			hwm = kb << 10
		}
	}
	return rss, hwm
}

// groupCPU is the user+system CPU time in seconds of the live processes
// of process group pgid (a server and the workers it forked).
func groupCPU(pgid int) float64 {
	ents, _ := os.ReadDir("/proc")
	var sum float64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := procStat(pid); len(f) > 13 {
			if pg, _ := strconv.Atoi(f[2]); pg == pgid {
				sum += statCPU(f)
			}
		}
	}
	return sum
}

// procStat is the fields of /proc/PID/stat after the command name: state
// is [0], pgrp [2], utime [11], stime [12].
func procStat(pid int) []string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	return strings.Fields(s)
}

// procCPU is a process's user+system CPU time in seconds.
func procCPU(pid int) float64 { return statCPU(procStat(pid)) }

// statCPU is the user+system CPU time in seconds in procStat's fields.
func statCPU(f []string) float64 {
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return float64(ut+st) / 100 // USER_HZ
}

// exitedCPU is the user+system CPU time in seconds of a process that was
// waited for (nil: none yet).
func exitedCPU(ps *os.ProcessState) float64 {
	if ps == nil {
		return 0
	}
	return (ps.UserTime() + ps.SystemTime()).Seconds()
}
