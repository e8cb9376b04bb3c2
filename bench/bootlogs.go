package main

// Helpers of the boot section: processes, log files stamped as they are
// written, and the milestones read from consoles, dnsmasq and nginx.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func bootSince(at map[string]time.Time, start time.Time) map[string]float64 {
	out := map[string]float64{}
	for k, t := range at {
		if !t.IsZero() {
			out[k] = t.Sub(start).Seconds()
		}
	}
	return out
}

func bootJSON(v any) []byte {
	b, _ := json.MarshalIndent(v, "", "  ")
	return b
}

func bootReadText(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// bootWaitFor polls cond every 100 ms until it holds or ctx ends (30 s at most).
func bootWaitFor(ctx context.Context, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// bootProc is a server of the reference boot, in its own process group.
type bootProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
}

// bootStart starts cmd with its output going to logPath, each line stamped
// with the time it was read when stamp is set.
func bootStart(cmd *exec.Cmd, logPath string, stamp bool) (*bootProc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var pr, pw *os.File
	if stamp {
		if pr, pw, err = os.Pipe(); err != nil {
			f.Close()
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = pw, pw
	} else {
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		if pw != nil {
			pr.Close()
			pw.Close()
		}
		return nil, err
	}
	p := &bootProc{cmd: cmd, done: make(chan struct{})}
	copied := make(chan struct{})
	if stamp {
		pw.Close()
		go func() {
			defer close(copied)
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				fmt.Fprintf(f, "%s %s\n", time.Now().UTC().Format(time.RFC3339Nano), sc.Text())
			}
			pr.Close()
		}()
	} else {
		close(copied)
	}
	go func() { cmd.Wait(); <-copied; f.Close(); close(p.done) }()
	return p, nil
}

// stop ends the process group with SIGTERM, then SIGKILL after 5 s.
func (p *bootProc) stop() {
	p.once.Do(func() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	})
}

// bootWatchFile copies the lines appended to src into dst, each stamped
// with the time it was first seen (polled every 20 ms), until the returned
// stop is called (stop makes a last pass; it may be called more than once).
func bootWatchFile(src, dst string) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		out, err := os.Create(dst)
		if err != nil {
			return
		}
		defer out.Close()
		var off int64
		var partial []byte
		pass := func() {
			f, err := os.Open(src)
			if err != nil {
				return
			}
			defer f.Close()
			buf, _ := io.ReadAll(io.NewSectionReader(f, off, 1<<40))
			if len(buf) == 0 {
				return
			}
			now := time.Now().UTC().Format(time.RFC3339Nano)
			off += int64(len(buf))
			partial = append(partial, buf...)
			for {
				i := strings.IndexByte(string(partial), '\n')
				if i < 0 {
					break
				}
				fmt.Fprintf(out, "%s %s\n", now, strings.TrimRight(string(partial[:i]), "\r"))
				partial = partial[i+1:]
			}
		}
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				pass()
				return
			case <-t.C:
				pass()
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(quit); <-done }) }
}

// stampedLine is a log line with the time the bench saw it.
type stampedLine struct {
	t    time.Time
	text string
}

// readStamped reads lines of "RFC3339Nano-time text".
func readStamped(r io.Reader) ([]stampedLine, error) {
	var out []stampedLine
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		ts, text, _ := strings.Cut(sc.Text(), " ")
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, stampedLine{t, text})
	}
	return out, sc.Err()
}

func readStampedFile(p string) ([]stampedLine, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	lines, err := readStamped(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return lines, nil
}

// consoleMilestones finds in a stamped serial console:
//   - "linux": the first kernel line ("[    0.000000] Linux version …"),
//     printed when the serial console registers, early in the kernel's
//     start (printk's own clock is no use here: under TCG it drifts from
//     the host's by tens of per cent);
//   - "init": the kernel's "Run /init as init process" (after the
//     initramfs is unpacked);
//   - each key of markers: the first line containing its value.
func consoleMilestones(lines []stampedLine, markers map[string]string) map[string]time.Time {
	at := map[string]time.Time{}
	once := func(k string, t time.Time) {
		if _, ok := at[k]; !ok {
			at[k] = t
		}
	}
	for _, l := range lines {
		if strings.HasPrefix(l.text, "[") && strings.Contains(l.text, "] Linux version ") {
			once("linux", l.t)
		}
		if strings.HasPrefix(l.text, "[") && strings.Contains(l.text, "] Run /init as init process") {
			once("init", l.t)
		}
		for k, s := range markers {
			if strings.Contains(l.text, s) {
				once(k, l.t)
			}
		}
	}
	if _, ok := at["modules"]; !ok && !at["modules-all"].IsZero() {
		// A node client that loads every module before the network says
		// only that.
		at["modules"] = at["modules-all"]
	}
	return at
}

// dnsmasqMilestones finds in dnsmasq's stamped --log-dhcp output its first
// proxy answer to mac ("dhcp": "PXE(br0) MAC proxy") and the end of the
// first whole TFTP transfer ("tftp": dnsmasq logs "sent FILE to ADDR" when
// a transfer ends, also after the client aborted it, as OVMF aborts its
// tsize probe: "error 8 User aborted the transfer received from ADDR" just
// before).
func dnsmasqMilestones(lines []stampedLine, mac string) map[string]time.Time {
	at := map[string]time.Time{}
	mac = strings.ToLower(mac)
	aborted := map[string]bool{}
	for _, l := range lines {
		_, msg, _ := strings.Cut(l.text, ": ")
		msg = strings.TrimSpace(msg)
		switch {
		case strings.Contains(msg, "PXE(") && strings.Contains(msg, " "+mac+" ") && strings.HasSuffix(msg, " proxy"):
			if _, ok := at["dhcp"]; !ok {
				at["dhcp"] = l.t
			}
		case strings.HasPrefix(msg, "error ") && strings.Contains(msg, " received from "):
			_, addr, _ := strings.Cut(msg, " received from ")
			aborted[addr] = true
		case strings.HasPrefix(msg, "sent ") && strings.Contains(msg, " to "):
			_, addr, _ := strings.Cut(msg, " to ")
			if aborted[addr] {
				delete(aborted, addr)
				continue
			}
			if _, ok := at["tftp"]; !ok {
				at["tftp"] = l.t
			}
		}
	}
	return at
}

// nginxAccess is one line of the bench's nginx log format:
// '$msec $request_time $status $body_bytes_sent $remote_addr "$request"'.
type nginxAccess struct {
	end, start   time.Time
	status       int
	bytes        int64
	client, path string
}

func parseNginxAccess(r io.Reader) ([]nginxAccess, error) {
	var out []nginxAccess
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < 7 {
			return nil, fmt.Errorf("nginx access log line %d: %q: too few fields", n, sc.Text())
		}
		msec, err1 := strconv.ParseFloat(f[0], 64)
		rt, err2 := strconv.ParseFloat(f[1], 64)
		status, err3 := strconv.Atoi(f[2])
		bytes, err4 := strconv.ParseInt(f[3], 10, 64)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return nil, fmt.Errorf("nginx access log line %d: %w", n, err)
		}
		end := time.UnixMilli(int64(msec*1000 + 0.5))
		out = append(out, nginxAccess{end: end, start: end.Add(-time.Duration(rt * float64(time.Second))),
			status: status, bytes: bytes, client: f[4], path: f[6]})
	}
	return out, sc.Err()
}

// nginxMilestones: the script fetched ("script"), the kernel requested
// ("kernel"), kernel and initrd fetched ("fetched"), by requests after
// since (the bench's own readiness check comes before).
func nginxMilestones(reqs []nginxAccess, since time.Time) map[string]time.Time {
	at := map[string]time.Time{}
	for _, q := range reqs {
		if q.status != 200 || q.start.Before(since.Add(-time.Millisecond)) {
			continue
		}
		switch q.path {
		case "/" + bootScript:
			if _, ok := at["script"]; !ok {
				at["script"] = q.end
			}
		case "/" + bootKernel, "/" + bootInitrd:
			if _, ok := at["kernel"]; !ok && q.path == "/"+bootKernel {
				at["kernel"] = q.start
			}
			if q.end.After(at["fetched"]) {
				at["fetched"] = q.end
			}
		case "/" + bootModulesCpio:
			if q.end.After(at["fetched"]) {
				at["fetched"] = q.end
			}
		case "/" + bootRootfs: // the Debian reference's /init fetching the squashfs
			at["wget"], at["downloaded"] = q.start, q.end
		}
	}
	return at
}
