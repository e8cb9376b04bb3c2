package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// cpuCap holds a server to a share of one core for a workload, with a
// cgroup's CPU bandwidth limit: cgroup v2's cpu.max, or cgroup v1's
// cpu.cfs_quota_us where the cpu controller is mounted as v1. Flat out,
// perfdhcp on one core sends as fast as either server answers, so the
// replies per second measure perfdhcp; a server held to a quarter of a
// core is the slower side, and its replies per second are its own.
type cpuCap struct {
	dir  string // the cgroup made for the run
	v2   bool
	back string // the cgroup the server was in, to return it to
}

// Where the cgroup hierarchies are mounted: v2 alone (unified), or v1 with
// the cpu controller in its own hierarchy.
const (
	cgroupV2    = "/sys/fs/cgroup"
	cgroupV1CPU = "/sys/fs/cgroup/cpu"
)

// newCPUCap makes the cgroup name with a limit of cores (0 < cores ≤ the
// machine's) per 100 ms period.
func newCPUCap(name string, cores float64) (*cpuCap, error) {
	const period = 100000 // µs
	quota := int(cores * period)
	if quota < 1000 {
		return nil, fmt.Errorf("CPU cap %.3f cores: below the kernel's 1 ms per period", cores)
	}
	if _, err := os.Stat(filepath.Join(cgroupV2, "cgroup.controllers")); err == nil {
		ctl, err := os.ReadFile(filepath.Join(cgroupV2, "cgroup.subtree_control"))
		if err != nil {
			return nil, fmt.Errorf("cgroup v2: %w", err)
		}
		if !slices.Contains(strings.Fields(string(ctl)), "cpu") {
			if err := os.WriteFile(filepath.Join(cgroupV2, "cgroup.subtree_control"), []byte("+cpu"), 0o644); err != nil {
				return nil, fmt.Errorf("cgroup v2: enable the cpu controller in %s: %w", cgroupV2, err)
			}
		}
		c := &cpuCap{dir: filepath.Join(cgroupV2, name), v2: true}
		if err := os.Mkdir(c.dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("cgroup v2: %w", err)
		}
		if err := os.WriteFile(filepath.Join(c.dir, "cpu.max"), []byte(fmt.Sprintf("%d %d", quota, period)), 0o644); err != nil {
			c.remove()
			return nil, fmt.Errorf("cgroup v2: set cpu.max of %s: %w", c.dir, err)
		}
		return c, nil
	}
	if _, err := os.Stat(filepath.Join(cgroupV1CPU, "cpu.cfs_quota_us")); err != nil {
		return nil, fmt.Errorf("no cgroup cpu controller (neither %s/cgroup.controllers nor %s/cpu.cfs_quota_us)", cgroupV2, cgroupV1CPU)
	}
	c := &cpuCap{dir: filepath.Join(cgroupV1CPU, name)}
	if err := os.Mkdir(c.dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("cgroup v1: %w", err)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"cpu.cfs_period_us", period}, {"cpu.cfs_quota_us", quota}} {
		if err := os.WriteFile(filepath.Join(c.dir, f.name), []byte(strconv.Itoa(f.v)), 0o644); err != nil {
			c.remove()
			return nil, fmt.Errorf("cgroup v1: set %s of %s: %w", f.name, c.dir, err)
		}
	}
	return c, nil
}

// holdCPU holds pid to cores of a core in a cgroup of its own, named for
// this bench run.
func holdCPU(pid int, cores float64) (*cpuCap, error) {
	c, err := newCPUCap(fmt.Sprintf("%s%d-held", nsPrefix, os.Getpid()), cores)
	if err != nil {
		return nil, err
	}
	if err := c.hold(pid); err != nil {
		c.remove()
		return nil, err
	}
	return c, nil
}

// probeCPUCap makes and removes a held cgroup, to learn before a section
// starts whether this machine lets the bench hold a server.
func probeCPUCap(cores float64) error {
	c, err := newCPUCap(fmt.Sprintf("%s%d-probe", nsPrefix, os.Getpid()), cores)
	if err != nil {
		return err
	}
	return c.remove()
}

// hold moves process pid (all its threads) into the cgroup.
func (c *cpuCap) hold(pid int) error {
	back, err := procCgroup(pid, c.v2)
	if err != nil {
		return err
	}
	c.back = back
	if err := os.WriteFile(filepath.Join(c.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("move process %d into %s: %w", pid, c.dir, err)
	}
	return nil
}

// release returns pid to the cgroup it was in, if it still runs.
func (c *cpuCap) release(pid int) error {
	if c.back == "" || syscall.Kill(pid, 0) != nil {
		return nil
	}
	root := cgroupV1CPU
	if c.v2 {
		root = cgroupV2
	}
	dst := filepath.Join(root, c.back, "cgroup.procs")
	if err := os.WriteFile(dst, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("move process %d back to %s: %w", pid, dst, err)
	}
	return nil
}

// remove deletes the cgroup (it must be empty).
func (c *cpuCap) remove() error {
	return os.Remove(c.dir)
}

// procCgroup is the path of pid's cgroup in the v2 hierarchy, or in the
// v1 hierarchy holding the cpu controller.
func procCgroup(pid int, v2 bool) (string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	defer f.Close()
	return parseProcCgroup(bufio.NewScanner(f), v2)
}

// parseProcCgroup reads /proc/PID/cgroup ("ID:CONTROLLERS:PATH" lines).
func parseProcCgroup(sc *bufio.Scanner, v2 bool) (string, error) {
	for sc.Scan() {
		id, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		ctls, path, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		if v2 && id == "0" && ctls == "" {
			return path, nil
		}
		if !v2 && slices.Contains(strings.Split(ctls, ","), "cpu") {
			return path, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no cpu cgroup in /proc/PID/cgroup")
}

// cleanupStaleCaps deletes the cgroups of bench runs whose process is gone.
func cleanupStaleCaps() {
	for _, root := range []string{cgroupV2, cgroupV1CPU} {
		dirs, _ := filepath.Glob(filepath.Join(root, nsPrefix+"*"))
		for _, d := range dirs {
			if leftBehind(filepath.Base(d)) && os.Remove(d) == nil {
				fmt.Fprintf(os.Stderr, "bench: deleted cgroup %s left by an earlier run\n", d)
			}
		}
	}
}
