package bootserver

import (
	"fmt"
	"net"

	"moobi/bootserver/adminauth"
	"moobi/bootserver/httpd"
	"moobi/inventory"
)

// adminViews applies appliance.read_auth and appliance.admin_listen to
// web: with read_auth token the read-only views need the admin token, and
// with admin_listen they leave the boot network's HTTP port for a
// listener of their own, returned (nil without admin_listen). Both take
// effect at start.
func adminViews(app inventory.Appliance, web *httpd.Server, guard *adminauth.Guard) (net.Listener, error) {
	if app.ReadAuth == inventory.ReadAuthToken {
		web.ReadAuth = guard.Wrap
	}
	if app.AdminListen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", app.AdminListen)
	if err != nil {
		return nil, fmt.Errorf("appliance.admin_listen %s: %w", app.AdminListen, err)
	}
	web.AdminElsewhere = true
	return ln, nil
}
