package inventory

import (
	"net"
	"strconv"
)

// Values of appliance.read_auth.
const (
	// ReadAuthNone serves the read-only views (/v1/nodes, /v1/stream,
	// /v1/swarm, /metrics, the dashboard) to anyone who reaches them.
	ReadAuthNone = "none"
	// ReadAuthToken requires the admin token for them too.
	ReadAuthToken = "token"
)

// adminListen checks appliance.admin_listen: HOST:PORT (HOST may be empty
// for every address).
func (p *parser) adminListen(line int, s string) string {
	host, port, err := net.SplitHostPort(s)
	n, perr := strconv.Atoi(port)
	switch {
	case err != nil || perr != nil || n < 1 || n > 65535:
		p.errorf(line, "appliance.admin_listen %q is not ADDRESS:PORT (e.g. 127.0.0.1:9090, or :9090 for every address)", s)
	case host != "" && net.ParseIP(host) == nil:
		p.errorf(line, "appliance.admin_listen %q: %q is not an IP address", s, host)
	}
	return s
}

// readAuth checks appliance.read_auth.
func (p *parser) readAuth(line int, s string) string {
	if s != ReadAuthNone && s != ReadAuthToken {
		p.errorf(line, "appliance.read_auth %q is neither %q nor %q (the admin token, data_dir/state/admin.token)", s, ReadAuthNone, ReadAuthToken)
	}
	return s
}
