package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Appliance is a `moobi serve` running in the lab's appliance namespace,
// logging JSON at debug level to a file in the lab's folder.
type Appliance struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

// StartAppliance runs `BIN serve --config CFG` and waits until it serves.
func (l *Lab) StartAppliance(ctx context.Context, bin, cfg string) (*Appliance, error) {
	logPath := filepath.Join(l.Dir(), "moobi.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	// Not tied to ctx: Stop ends it with SIGINT, as an operator would.
	// The log file is shared by every appliance started in this lab: only
	// lines of this run count.
	started := time.Now()
	cmd := l.Command(context.Background(), bin, "serve", "--config", cfg, "--log-level", "debug", "--log-format", "json")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start moobi serve: %w", err)
	}
	a := &Appliance{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(a.done) }()
	if err := a.WaitLog(ctx, 30*time.Second, func(e LogEntry) bool { return e.Msg == "appliance serving" && !e.Time.Before(started) }); err != nil {
		a.Stop()
		return nil, fmt.Errorf("moobi serve did not start: %w\n%s", err, a.Log())
	}
	return a, nil
}

// Pid is the appliance process's id (`ip netns exec` execs it in place).
func (a *Appliance) Pid() int { return a.cmd.Process.Pid }

// Stop sends SIGINT and waits up to 15 s for a clean exit, then kills.
func (a *Appliance) Stop() error {
	select {
	case <-a.done:
		return nil
	default:
	}
	a.cmd.Process.Signal(os.Interrupt)
	select {
	case <-a.done:
		if code := a.cmd.ProcessState.ExitCode(); code != 0 {
			return fmt.Errorf("moobi serve exited %d after SIGINT", code)
		}
		return nil
	case <-time.After(15 * time.Second):
		a.cmd.Process.Kill()
		<-a.done
		return fmt.Errorf("moobi serve did not stop within 15 s of SIGINT")
	}
}

// Kill SIGKILLs the appliance, as a power cut or an OOM kill would, and
// waits for it to be gone: it gets no chance to save state or close
// connections cleanly.
func (a *Appliance) Kill() {
	select {
	case <-a.done:
		return
	default:
	}
	a.cmd.Process.Kill()
	<-a.done
}

// Log is everything the appliance logged so far.
func (a *Appliance) Log() string {
	b, _ := os.ReadFile(a.logPath)
	return string(b)
}

// LogEntry is one JSON log line of moobi serve, with the keys tests read.
type LogEntry struct {
	Time     time.Time `json:"time"`
	Msg      string    `json:"msg"`
	Level    string    `json:"level"`
	MAC      string    `json:"mac"`
	Reason   string    `json:"reason"`
	Port     int       `json:"port"`
	BootFile string    `json:"bootfile"`
	File     string    `json:"filename"`
	Client   string    `json:"client"`
	URI      string    `json:"uri"`
	Status   int       `json:"status"`
	Firmware string    `json:"firmware"`
	Addr     string    `json:"addr"`
	Bytes    int64     `json:"bytes"`
	State    string    `json:"state"`
	Version  string    `json:"version"`
	Image    string    `json:"image"`
	Done     int64     `json:"done"`
	Total    int64     `json:"total"`
	Reused   int64     `json:"reused"`
	Peers    int64     `json:"from_peers"`
	WebSeed  int64     `json:"from_webseed"`
}

// Entries parses the log so far.
func (a *Appliance) Entries() []LogEntry {
	var out []LogEntry
	sc := bufio.NewScanner(strings.NewReader(a.Log()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e LogEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// WaitLog polls the log until an entry matches, the timeout passes or the
// appliance exits.
func (a *Appliance) WaitLog(ctx context.Context, timeout time.Duration, match func(LogEntry) bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		for _, e := range a.Entries() {
			if match(e) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no matching log entry: %w", ctx.Err())
		case <-a.done:
			return fmt.Errorf("moobi serve exited: %v", a.cmd.ProcessState)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
