package bootserver

import (
	"errors"
	"testing"

	"moobi/power"
	"moobi/power/fleet"
	"moobi/rollout"
)

// A refused password reaches the rollout as power.ErrAuth, so that it is
// not tried again; other failures are.
func TestResultErrKeepsTheKind(t *testing.T) {
	tests := []struct {
		res       fleet.Result
		wantNil   bool
		wantAuth  bool
		wantRetry bool
	}{
		{fleet.Result{Host: "a", OK: true}, true, false, false},
		{fleet.Result{Host: "b", Error: "ipmi: the BMC refused the user name or password", Kind: "auth"}, false, true, false},
		{fleet.Result{Host: "c", Error: "ipmi: the BMC did not answer", Kind: "unreachable"}, false, false, true},
		{fleet.Result{Host: "d", Error: "redfish: 500", Kind: "failed"}, false, false, true},
	}
	for _, tc := range tests {
		err := resultErr(tc.res)
		if (err == nil) != tc.wantNil {
			t.Errorf("%s: err %v, want nil %v", tc.res.Host, err, tc.wantNil)
			continue
		}
		if errors.Is(err, power.ErrAuth) != tc.wantAuth {
			t.Errorf("%s: %v: errors.Is ErrAuth = %v, want %v", tc.res.Host, err, !tc.wantAuth, tc.wantAuth)
		}
		retry := len(rollout.RetryHosts(map[string]error{tc.res.Host: err})) == 1
		if retry != tc.wantRetry {
			t.Errorf("%s: %v: retried %v, want %v", tc.res.Host, err, retry, tc.wantRetry)
		}
		if err != nil && err.Error() != tc.res.Error+" ("+tc.res.Kind+")" {
			t.Errorf("%s: message %q", tc.res.Host, err)
		}
	}
}
