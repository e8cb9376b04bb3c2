package ipmi

import (
	"errors"
	"fmt"
	"testing"

	"github.com/bougou/go-ipmi/pkg/client"

	"moobi/power"
)

// TestClassify: the errors go-ipmi gives (as seen from a BMC simulator and
// a silent address) are sorted into power's kinds.
func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want error
	}{
		{fmt.Errorf("rakp1 failed: %w", client.ErrRAKPAuthentication), power.ErrAuth},
		{errors.New("connect20 failed after try all cipher suite ids ([17 3]), errs: \ncmd: rakp1 failed with cipher suite id (3), err: validate rakp2 message failed, err: RAKP2 authentication code mismatch: RAKP authentication failed"), power.ErrAuth},
		{errors.New("RMCP+ status: Unauthorized name"), power.ErrAuth},
		{errors.New("cmd: Get Channel Authentication Capabilities failed, err: IPMI LAN: no matching IPMI response (expected rqSeq 0x01, command 0x38) before UDP read deadline after 3 attempt(s): udp exchange: no datagram matched before deadline"), power.ErrUnreachable},
		{errors.New("write udp 10.99.0.1:40000->10.99.0.250:623: write: no route to host"), power.ErrUnreachable},
		{errors.New("read udp: i/o timeout"), power.ErrUnreachable},
		{errors.New("cc: 0xcc, description: Invalid data field in request"), nil},
	}
	for _, tc := range tests {
		got := classify(tc.err)
		if tc.want == nil {
			if errors.Is(got, power.ErrAuth) || errors.Is(got, power.ErrUnreachable) {
				t.Errorf("classify(%q) = %v, want neither auth nor unreachable", tc.err, got)
			}
			continue
		}
		if !errors.Is(got, tc.want) {
			t.Errorf("classify(%q) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
