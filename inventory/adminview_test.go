package inventory

import (
	"strings"
	"testing"
)

func TestAdminView(t *testing.T) {
	for _, tc := range []struct{ yaml, listen, auth string }{
		{good, "", ReadAuthNone},
		{strings.Replace(good, "  http_port", "  admin_listen: 127.0.0.1:9090\n  read_auth: token\n  http_port", 1), "127.0.0.1:9090", ReadAuthToken},
		{strings.Replace(good, "  http_port", "  admin_listen: \":9090\"\n  http_port", 1), ":9090", ReadAuthNone},
	} {
		inv, err := Load(fixture(t, tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if a := inv.Appliance; a.AdminListen != tc.listen || a.ReadAuth != tc.auth {
			t.Errorf("admin_listen %q, read_auth %q; want %q, %q", a.AdminListen, a.ReadAuth, tc.listen, tc.auth)
		}
	}
}
