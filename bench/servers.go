package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"moobi/lab"
)

// Ports the servers listen on in the server namespace.
const (
	moobiHTTPPort = 8080
	nginxPort     = 8081
	profileName   = "bench"
)

// The files served. The iPXE binary is a copy of --ipxe; the others are
// random bytes, so nothing compresses them.
const (
	fileIPXE   = "undionly.kpxe"
	fileTFTP   = "random-16m.bin"
	fileKernel = "vmlinuz-bench"
	fileInitrd = "initrd-bench.img"
)

var fileSizes = map[string]int64{
	fileTFTP:   16 << 20,
	fileKernel: 8 << 20,
	fileInitrd: 32 << 20,
}

// scratch is the run's folder: files served, configs and logs.
type scratch struct {
	dir      string
	files    string // served by every server: moobi's data_dir/tftp, tftpd-hpa's root, nginx's root
	moobiCfg string
	sizes    map[string]int64
}

func newScratch(c config) (*scratch, error) {
	dir, err := os.MkdirTemp("", "moobi-bench-")
	if err != nil {
		return nil, err
	}
	// tftpd-hpa and nginx workers run as nobody/www-data: everything on the
	// path to the files must be world-readable.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	s := &scratch{dir: dir, files: filepath.Join(dir, "moobi-data", "tftp"), moobiCfg: filepath.Join(dir, "hosts.yaml"), sizes: map[string]int64{}}
	if err := os.MkdirAll(s.files, 0o755); err != nil {
		return nil, err
	}
	os.Chmod(filepath.Join(dir, "moobi-data"), 0o755)
	for name, size := range fileSizes {
		if err := randomFile(filepath.Join(s.files, name), size); err != nil {
			return nil, err
		}
		s.sizes[name] = size
	}
	n, err := copyFile(c.ipxe, filepath.Join(s.files, fileIPXE))
	if err != nil {
		return nil, err
	}
	s.sizes[fileIPXE] = n
	// unknown_hosts names the profile: every MAC perfdhcp makes up gets an
	// answer, as every one does from dnsmasq. The TFTP load's clients all
	// come from the client namespace's one address: tftp_per_client lets
	// 32 of them through at once, as 32 machines would be.
	cfg := fmt.Sprintf(`appliance:
  tftp_per_client: 32
  interface: %s
  address: %s
  http_port: %d
  data_dir: %s
  ipxe_dir: %s
  bios_binary: %s
  unknown_hosts: %s
profiles:
  %s:
    kernel: %s
    initrd: [%s]
    cmdline: console=ttyS0
hosts:
  bench-node01:
    mac: 52:54:00:be:0c:01
    profile: %s
`, srvIf, srvAddr, moobiHTTPPort, filepath.Join(dir, "moobi-data"), filepath.Dir(c.ipxe), filepath.Base(c.ipxe),
		profileName, profileName, filepath.Join(s.files, fileKernel), filepath.Join(s.files, fileInitrd), profileName)
	if err := os.WriteFile(s.moobiCfg, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	return s, nil
}

func randomFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func copyFile(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// server is one server under test, started fresh for each batch of runs.
type server struct {
	name  string
	start func(ctx context.Context) (*proc, error)
	// stopSig ends it cleanly.
	stopSig syscall.Signal
}

// ensureAlone fails unless the server namespace is empty: each server runs
// alone (two proxy DHCP servers can share port 67 with SO_REUSEADDR, and
// both would answer).
func ensureAlone(ctx context.Context, ns string) error {
	if pids := lab.NetnsPids(ns); len(pids) > 0 {
		if err := lab.KillNetnsProcesses(ctx, ns); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "bench: killed leftover processes %v in %s\n", pids, ns)
	}
	return nil
}

// moobiServer is `moobi serve`, or with a profile path the profiling
// harness (see harnessMain).
func (b *runner) moobiServer(bin, harnessProfile, mutexProfile string) server {
	name := "moobi"
	if harnessProfile != "" {
		name = "moobi (profiling harness)"
	}
	return server{name: name, stopSig: syscall.SIGINT, start: func(ctx context.Context) (*proc, error) {
		if err := ensureAlone(ctx, b.net.srv); err != nil {
			return nil, err
		}
		// A fresh node registry each time: the runs do not inherit the
		// thousands of MACs an earlier run made up.
		os.RemoveAll(filepath.Join(b.s.dir, "moobi-data", "state"))
		b.seq++
		logPath := filepath.Join(b.s.dir, fmt.Sprintf("moobi-%03d.log", b.seq))
		var p *proc
		var err error
		if harnessProfile == "" {
			// As an operator runs it: info-level text log (one line per
			// reply and per request), here to a file.
			p, err = startIn(b.net.srv, logPath, bin, "serve", "--config", b.s.moobiCfg)
		} else {
			p, err = startIn(b.net.srv, logPath, b.self, "harness", "--config", b.s.moobiCfg, "--cpuprofile", harnessProfile, "--mutexprofile", mutexProfile)
		}
		if err != nil {
			return nil, err
		}
		if err := p.waitLog(ctx, "appliance serving", 30*time.Second); err != nil {
			p.stop(syscall.SIGKILL)
			return nil, err
		}
		for _, l := range []struct {
			proto string
			port  int
		}{{"udp", 67}, {"udp", 69}, {"tcp", moobiHTTPPort}} {
			if err := p.waitListening(ctx, l.proto, l.port, 10*time.Second); err != nil {
				p.stop(syscall.SIGKILL)
				return nil, err
			}
		}
		return p, nil
	}}
}

// dnsmasqServer is dnsmasq as a PXE proxy DHCP server only: no DNS
// (--port=0), no TFTP, logging each reply to a file as moobi does.
func (b *runner) dnsmasqServer() server {
	return server{name: "dnsmasq", stopSig: syscall.SIGTERM, start: func(ctx context.Context) (*proc, error) {
		if err := ensureAlone(ctx, b.net.srv); err != nil {
			return nil, err
		}
		b.seq++
		logPath := filepath.Join(b.s.dir, fmt.Sprintf("dnsmasq-%03d.log", b.seq))
		p, err := startIn(b.net.srv, logPath, mustLook("dnsmasq"),
			"--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
			"--interface="+srvIf, "--bind-interfaces", "--pid-file=",
			"--dhcp-leasefile="+filepath.Join(b.s.dir, "dnsmasq.leases"),
			"--log-facility="+logPath,
			"--dhcp-range="+netCIDR+",proxy",
			"--pxe-service=x86PC,Moobi bench,undionly",
		)
		if err != nil {
			return nil, err
		}
		if err := p.waitListening(ctx, "udp", 67, 10*time.Second); err != nil {
			p.stop(syscall.SIGKILL)
			return nil, err
		}
		return p, nil
	}}
}

// tftpdServer is tftpd-hpa in the foreground (-L) serving the files folder.
func (b *runner) tftpdServer() server {
	return server{name: "tftpd-hpa", stopSig: syscall.SIGTERM, start: func(ctx context.Context) (*proc, error) {
		if err := ensureAlone(ctx, b.net.srv); err != nil {
			return nil, err
		}
		b.seq++
		logPath := filepath.Join(b.s.dir, fmt.Sprintf("tftpd-%03d.log", b.seq))
		p, err := startIn(b.net.srv, logPath, mustLook("in.tftpd"), "-L", "-s", b.s.files, "-a", srvAddr+":69")
		if err != nil {
			return nil, err
		}
		if err := p.waitListening(ctx, "udp", 69, 10*time.Second); err != nil {
			p.stop(syscall.SIGKILL)
			return nil, err
		}
		return p, nil
	}}
}

// nginxServer is nginx in the foreground with its own config: sendfile on,
// access log on (moobi logs every request too), workers = cores.
func (b *runner) nginxServer() server {
	return server{name: "nginx", stopSig: syscall.SIGTERM, start: func(ctx context.Context) (*proc, error) {
		if err := ensureAlone(ctx, b.net.srv); err != nil {
			return nil, err
		}
		dir := filepath.Join(b.s.dir, "nginx")
		confPath, err := writeNginxConf(dir, srvAddr, nginxPort, b.s.files, filepath.Join(dir, "access.log"))
		if err != nil {
			return nil, err
		}
		b.seq++
		logPath := filepath.Join(b.s.dir, fmt.Sprintf("nginx-%03d.log", b.seq))
		p, err := startIn(b.net.srv, logPath, mustLook("nginx"), "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", confPath)
		if err != nil {
			return nil, err
		}
		if err := p.waitListening(ctx, "tcp", nginxPort, 10*time.Second); err != nil {
			p.stop(syscall.SIGKILL)
			return nil, err
		}
		return p, nil
	}}
}

func (b *runner) httpURL(server, file string) string {
	if server == "nginx" {
		return "http://" + srvAddr + ":" + strconv.Itoa(nginxPort) + "/" + file
	}
	if file == fileKernel {
		return fmt.Sprintf("http://%s:%d/profiles/%s/kernel", srvAddr, moobiHTTPPort, profileName)
	}
	return fmt.Sprintf("http://%s:%d/profiles/%s/initrd/0/%s", srvAddr, moobiHTTPPort, profileName, file)
}

// writeNginxConf writes dir/nginx.conf and returns its path: nginx in the
// foreground, workers = cores, serving root on addr:port with sendfile, its
// temporary files and error log under dir, and an access log at access
// whose lines are "msec request_time status bytes client request" (the
// boot section reads it).
func writeNginxConf(dir, addr string, port int, root, access string) (string, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return "", err
	}
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 1024; }
http {
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    default_type application/octet-stream;
    log_format boot '$msec $request_time $status $body_bytes_sent $remote_addr "$request"';
    access_log %[2]s boot;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    server {
        listen %[3]s:%[4]d;
        root %[5]s;
    }
}
`, dir, access, addr, port, root)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return "", fmt.Errorf("nginx config: %w", err)
	}
	return path, nil
}
