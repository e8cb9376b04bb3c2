package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/u-root/u-root/pkg/dhclient"
	"github.com/u-root/u-root/pkg/mount"
	"github.com/u-root/u-root/pkg/mount/loop"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"moobi/bootsign"
	"moobi/initrd/fetch"
	"moobi/initrd/modload"
	"moobi/nodeapi"
)

// Paths inside the initramfs. /run is a tmpfs that switch_root carries
// into the image, so the RAM cache and the mounts under it survive the
// pivot.
const (
	runDir   = "/run/moobi"
	cacheDir = runDir + "/cache"
	roDir    = runDir + "/ro"
	rwDir    = runDir + "/rw"
	newRoot  = "/newroot"
	seedSpec = runDir + "/seed.json"
)

// Boot runs the whole node boot and, on success, never returns: the
// process becomes the image's init. Each failure is shown on the console,
// reported as a failed event when the appliance answers, and retried with
// backoff; after p.RebootAfter the machine reboots.
func Boot(log *slog.Logger) error {
	if err := mountBasics(); err != nil {
		return err
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	p, err := ParseCmdline(string(cmdline))
	if err != nil {
		return err
	}
	log = log.With("mac", p.MAC.String(), "host", p.Hostname)
	deadline := time.Now().Add(p.RebootAfter)
	backoff := 2 * time.Second
	var st attemptState // kept across attempts
	for attempt := 1; ; attempt++ {
		err := attemptBoot(log, p, &st)
		log.Error("boot failed", "attempt", attempt, "err", err)
		fmt.Fprintf(os.Stderr, "\nMOOBI: boot failed: %v\n", err)
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "MOOBI: giving up after %v; rebooting\n", p.RebootAfter)
			unix.Sync()
			return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Minute)
	}
}

// attemptState is what boot attempts keep: the interface a previous
// attempt configured (its lease is kept: the site DHCP server may be down
// while the appliance is what failed) and the kernel modules' loading.
type attemptState struct {
	ifname string
	mods   *modload.Run
}

// attemptBoot makes one boot attempt. The first one loads the network
// drivers and configures the network; the other modules keep loading
// meanwhile, and are waited for before the cache device is opened and
// before the image is mounted.
func attemptBoot(log *slog.Logger, p Params, st *attemptState) error {
	ctx := context.Background()
	// Boot configs are trusted only when signed with the appliance's key;
	// without the key the node refuses to boot (once the appliance can be
	// told why).
	pub, keyErr := LoadKey(bootsign.InitramfsPath)
	if st.mods == nil {
		st.mods = modload.Start(moduleDir(), log)
	}
	if st.ifname == "" {
		name, err := configureNetwork(ctx, log, p.MAC)
		if err != nil {
			return err // the appliance cannot be told: no network
		}
		st.ifname = name
		log.Info("network up", "interface", name)
	}
	opts := fetch.Options{Server: p.Server, MAC: p.MAC, Dir: cacheDir, Version: p.Version, BootToken: p.BootToken, PublicKey: pub, Log: log}
	if keyErr != nil {
		fetch.Report(ctx, opts, nodeapi.Event{State: nodeapi.StateFailed, Reason: keyErr.Error()})
		return keyErr
	}
	cfg, err := fetch.GetBootConfig(ctx, opts)
	if err != nil {
		if answered(err) {
			fetch.Report(ctx, opts, nodeapi.Event{State: nodeapi.StateFailed, Reason: err.Error()})
		}
		return err
	}
	log.Info("boot config verified", "key_id", bootsign.KeyID(pub), "image", cfg.Image, "version", cfg.Version)
	var ov []byte
	if cfg.Overlay != nil {
		// Fetched before the image: a broken overlay fails the boot early.
		if ov, err = fetch.GetOverlay(ctx, opts, *cfg.Overlay); err != nil {
			fetch.Report(ctx, opts, nodeapi.Event{State: nodeapi.StateFailed, Reason: err.Error()})
			return err
		}
	}
	if cfg.Cache != "" {
		st.mods.Wait() // the cache device's driver
	}
	choice, err := prepareCache(cfg)
	if err != nil {
		fetch.Report(ctx, opts, nodeapi.Event{State: nodeapi.StateFailed, Reason: err.Error()})
		return err
	}
	cache := choice.Path
	if choice.FellBack {
		msg := fmt.Sprintf("%s; caching in RAM (cache_fallback: ram)", choice.Why)
		log.Warn("cache device unusable; caching in RAM", "cache", cfg.Cache, "why", choice.Why, "path", cache)
		fmt.Fprintf(os.Stderr, "MOOBI: %s\n", msg)
		fetch.Report(ctx, opts, nodeapi.Event{State: nodeapi.StateFetching, Message: msg, Image: cfg.Image, Version: cfg.Version, Time: time.Now()})
	}
	opts.Path = cache
	s, err := fetch.Fetch(ctx, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "MOOBI: %s %s verified: %d bytes, %d reused, %d from peers, %d from the appliance's seeder, %d from the web seed, %.1fs\n",
		cfg.Image, cfg.Version, s.Stats.Size, s.Stats.Reused, s.Stats.FromPeers, s.Stats.FromApp, s.Stats.FromSeed, s.Stats.Duration.Seconds())
	st.mods.Wait() // loop, squashfs, overlay
	if err := mountImage(cache, p.Hostname); err != nil {
		s.Close()
		fetch.Report(ctx, opts, nodeapi.Event{State: nodeapi.StateFailed, Reason: err.Error()})
		return err
	}
	var dev string
	var devSize int64
	if cfg.Cache != "" && cache == cfg.Cache {
		dev = cfg.Cache
		devSize, _ = deviceSize(dev)
	}
	id, err := applyIdentity(log, newRoot, cfg, ov, st.ifname, dev, devSize)
	if err != nil {
		s.Close()
		unmountImage()
		err = fmt.Errorf("node identity: %w", err)
		fetch.Report(ctx, opts, nodeapi.Event{State: nodeapi.StateFailed, Reason: err.Error()})
		return err
	}
	fmt.Fprintf(os.Stderr, "MOOBI: %s\n", describeIdentity(id))
	systemd := isSystemd(newRoot, p.Init)
	if err := s.SaveSeedSpec(seedSpec, systemd); err != nil {
		s.Close()
		unmountImage()
		return err
	}
	s.Close() // the seeder process takes over the port
	seeding := true
	if err := startSeeder(); err != nil {
		log.Warn("seeder did not start; booting without it", "err", err)
		seeding = false
	}
	switch {
	case systemd && seeding:
		// The seeder reports running once systemd has reached its
		// default target.
		fetch.Report(ctx, opts, nodeapi.Event{State: nodeapi.StateVerified, Message: "switching to the image's systemd; running once it reaches its default target", Image: cfg.Image, Version: cfg.Version})
	default:
		fetch.Report(ctx, opts, nodeapi.Event{State: nodeapi.StateRunning, Message: "switching to the image's init, seeding", Image: cfg.Image, Version: cfg.Version})
	}
	fmt.Fprintf(os.Stderr, "MOOBI: switching root to %s %s as %s\n", cfg.Image, cfg.Version, p.Hostname)
	return mount.SwitchRoot(newRoot, p.Init)
}

func mountBasics() error {
	for _, m := range []struct{ src, dst, fs string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}, {"tmpfs", "/run", "tmpfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fs, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	for _, d := range []string{cacheDir, roDir, rwDir, newRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// moduleDir is the module tree of the running kernel, where the image's
// modules archive unpacks.
func moduleDir() string {
	var uts unix.Utsname
	unix.Uname(&uts)
	return filepath.Join("/lib/modules", unix.ByteSliceToString(uts.Release[:]))
}

// dhcpRounds is how many DHCP exchanges (each with its own retries) one
// boot attempt makes before it fails; Boot then retries the whole attempt
// with backoff.
const dhcpRounds = 3

// configureNetwork finds the NIC with the boot MAC and configures it by
// DHCP (the site's server), retrying and backing off; a NAK restarts the
// exchange.
func configureNetwork(ctx context.Context, log *slog.Logger, mac net.HardwareAddr) (string, error) {
	var link netlink.Link
	for deadline := time.Now().Add(30 * time.Second); ; {
		links, _ := netlink.LinkList()
		for _, l := range links {
			if l.Attrs().HardwareAddr.String() == mac.String() {
				link = l
			}
		}
		if link != nil {
			break
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no network interface has the boot MAC %s (is its driver in the modules archive?)", mac)
		}
		time.Sleep(200 * time.Millisecond)
	}
	lo, _ := netlink.LinkByName("lo")
	if lo != nil {
		netlink.LinkSetUp(lo)
	}
	name := link.Attrs().Name
	if err := linkUp(ctx, link); err != nil {
		return "", err
	}
	backoff := time.Second
	for attempt := 1; attempt <= dhcpRounds; attempt++ {
		lease, err := lease4(ctx, name)
		if err == nil {
			if err := dhclient.NewPacket4(link, lease).Configure(); err != nil {
				return "", fmt.Errorf("configure %s: %w", name, err)
			}
			log.Info("DHCP lease", "interface", name, "address", lease.YourIPAddr, "server", lease.ServerIdentifier())
			return name, nil
		}
		log.Warn("DHCP attempt failed", "interface", name, "attempt", attempt, "err", err)
		if ctx.Err() != nil {
			break
		}
		time.Sleep(backoff)
		backoff *= 2
	}
	return "", fmt.Errorf("no DHCP lease on %s after %d attempts (is the site DHCP server up?)", name, dhcpRounds)
}

// linkUp sets the link up and waits for its carrier. It does not wait for
// the kernel to call the link operational: that comes from the kernel's
// link watch, which runs up to a second later (0.8 s in a lab VM), while
// a NIC with carrier sends and receives as soon as it is up.
func linkUp(ctx context.Context, link netlink.Link) error {
	name := link.Attrs().Name
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return fmt.Errorf("interface %s: %w", name, err)
		}
		if a := l.Attrs(); a.RawFlags&unix.IFF_LOWER_UP != 0 || a.OperState == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("interface %s has no carrier after 20 s (is its cable in?)", name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// lease4 runs one DHCP exchange (each message tried 3 times, 5 s apart)
// with the options the node has always sent.
func lease4(ctx context.Context, ifname string) (*dhcpv4.DHCPv4, error) {
	client, err := nclient4.New(ifname, nclient4.WithTimeout(5*time.Second), nclient4.WithRetry(3))
	if err != nil {
		return nil, fmt.Errorf("DHCP client on %s: %w", ifname, err)
	}
	defer client.Close()
	lease, err := client.Request(ctx,
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXE UROOT")),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask),
		dhcpv4.WithNetboot)
	if err != nil {
		return nil, err
	}
	return lease.ACK, nil
}

// prepareCache looks at the cache device (if the boot config names one)
// and at the RAM cache's tmpfs, and decides where the image goes (see
// decideCache).
func prepareCache(cfg nodeapi.BootConfig) (cacheChoice, error) {
	pr := cacheProbe{RAMDir: "/run"}
	if cfg.Cache != "" {
		pr.DevSize, pr.DevErr = deviceSize(cfg.Cache)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(pr.RAMDir, &st); err != nil {
		return cacheChoice{}, fmt.Errorf("RAM cache %s: %w", pr.RAMDir, err)
	}
	pr.RAMFree = int64(st.Bavail) * st.Bsize
	// A previous attempt's download stays and is reused: its blocks count
	// as free for this one.
	var fst unix.Stat_t
	if unix.Stat(filepath.Join(cacheDir, cfg.Image+".rootfs"), &fst) == nil {
		pr.RAMFree += fst.Blocks * 512
	}
	return decideCache(cfg, cacheDir, pr)
}

// deviceSize opens a cache device and returns its size in bytes.
func deviceSize(dev string) (int64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Seek(0, io.SeekEnd)
}

// mountImage mounts the verified image read-only with a RAM overlay for
// writes at /newroot and writes the node's identity into it.
func mountImage(cache, hostname string) error {
	st, err := os.Stat(cache)
	if err != nil {
		return err
	}
	if st.Mode().IsRegular() {
		lp, err := loop.New(cache, "squashfs", "")
		if err != nil {
			return fmt.Errorf("loop device for %s: %w", cache, err)
		}
		if _, err := lp.Mount(roDir, unix.MS_RDONLY); err != nil {
			return fmt.Errorf("mount the image: %w", err)
		}
	} else if err := unix.Mount(cache, roDir, "squashfs", unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("mount the image from %s: %w", cache, err)
	}
	if err := unix.Mount("tmpfs", rwDir, "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("mount the overlay's tmpfs: %w", err)
	}
	os.MkdirAll(rwDir+"/upper", 0o755)
	os.MkdirAll(rwDir+"/work", 0o755)
	opts := "lowerdir=" + roDir + ",upperdir=" + rwDir + "/upper,workdir=" + rwDir + "/work"
	if err := unix.Mount("overlay", newRoot, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount the overlay: %w", err)
	}
	if hostname != "" {
		os.MkdirAll(newRoot+"/etc", 0o755)
		if err := os.WriteFile(newRoot+"/etc/hostname", []byte(hostname+"\n"), 0o644); err != nil {
			return fmt.Errorf("write hostname: %w", err)
		}
		unix.Sethostname([]byte(hostname))
	}
	return nil
}

// startSeeder starts this program again as the seeder; it keeps running
// after the pivot, as a child of the image's init.
func startSeeder() error {
	self, err := os.Executable()
	if err != nil {
		self = "/bin/moobi-node"
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command(self, "seed", seedSpec)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.ExtraFiles = []*os.File{w} // fd 3: written once the image is open
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return err
	}
	w.Close()
	// The pivot moves /run away: wait until the seeder holds the image open.
	r.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := r.Read(make([]byte, 1)); err != nil {
		return fmt.Errorf("seeder not ready: %w", err)
	}
	return nil
}

// unmountImage undoes mountImage, so that the next boot attempt starts
// clean.
func unmountImage() {
	for _, d := range []string{newRoot, rwDir, roDir} {
		unix.Unmount(d, unix.MNT_DETACH)
	}
}
