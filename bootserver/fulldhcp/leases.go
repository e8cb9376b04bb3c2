package fulldhcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Lease is one address bound to a client, as the lease file keeps it.
type Lease struct {
	MAC     string     `json:"mac"`
	Addr    netip.Addr `json:"addr"`
	Expires time.Time  `json:"expires"`
}

// leaseFile is the lease file's JSON form. Version guards against reading
// a file written by an incompatible appliance.
type leaseFile struct {
	Version int     `json:"version"`
	Leases  []Lease `json:"leases"`
}

const leaseFileVersion = 1

// ParseLeases reads a lease file. Every lease must name a 6-byte MAC and
// an IPv4 address, no address or MAC twice; anything else is an error
// saying what is wrong, and nothing of the file is used.
func ParseLeases(data []byte) ([]Lease, error) {
	var f leaseFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("not a lease file: %w", err)
	}
	if dec.More() {
		return nil, errors.New("not a lease file: data after the JSON document")
	}
	if f.Version != leaseFileVersion {
		return nil, fmt.Errorf("lease file version %d, want %d", f.Version, leaseFileVersion)
	}
	macs := map[string]bool{}
	addrs := map[netip.Addr]bool{}
	for i, l := range f.Leases {
		mac, err := net.ParseMAC(l.MAC)
		if err != nil || len(mac) != 6 || mac.String() != l.MAC {
			return nil, fmt.Errorf("lease %d: MAC %q is not a lower-case 6-byte MAC", i, l.MAC)
		}
		if !l.Addr.Is4() {
			return nil, fmt.Errorf("lease %d (%s): address %v is not IPv4", i, l.MAC, l.Addr)
		}
		if l.Expires.IsZero() {
			return nil, fmt.Errorf("lease %d (%s): no expiry", i, l.MAC)
		}
		if macs[l.MAC] || addrs[l.Addr] {
			return nil, fmt.Errorf("lease %d (%s, %s): MAC or address leased twice", i, l.MAC, l.Addr)
		}
		macs[l.MAC], addrs[l.Addr] = true, true
	}
	return f.Leases, nil
}

// MarshalLeases is the lease file for leases, sorted by address.
func MarshalLeases(leases []Lease) []byte {
	ls := append([]Lease(nil), leases...)
	sort.Slice(ls, func(i, j int) bool { return ls[i].Addr.Less(ls[j].Addr) })
	if ls == nil {
		ls = []Lease{}
	}
	b, _ := json.MarshalIndent(leaseFile{Version: leaseFileVersion, Leases: ls}, "", " ")
	return append(b, '\n')
}

// LoadLeases reads the lease file at path. A missing file is no leases. A
// file that does not parse is renamed aside (PATH.corrupt-TIMESTAMP, so
// nothing is lost) and reported in the error, with the leases empty: the
// caller logs it loudly and serves on.
func LoadLeases(path string, now time.Time) (leases []Lease, aside string, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("read lease file: %w", err)
	}
	leases, perr := ParseLeases(data)
	if perr == nil {
		return leases, "", nil
	}
	aside = path + ".corrupt-" + now.UTC().Format("20060102T150405Z")
	if err := os.Rename(path, aside); err != nil {
		return nil, "", fmt.Errorf("lease file %s is corrupt (%v) and could not be kept aside: %w", path, perr, err)
	}
	return nil, aside, fmt.Errorf("lease file %s is corrupt: %w", path, perr)
}

// SaveLeases writes the lease file atomically: a temporary file in the same
// folder, synced, renamed over path, and the folder synced, so that a
// crash leaves either the old file or the new one.
func SaveLeases(path string, leases []Lease) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("lease folder: %w", err)
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write lease file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(MarshalLeases(leases)); err != nil {
		tmp.Close()
		return fmt.Errorf("write lease file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync lease file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write lease file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace lease file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
