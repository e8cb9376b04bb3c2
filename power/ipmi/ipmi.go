// Package ipmi is a power.Controller for BMCs that speak IPMI 2.0 over LAN
// (RMCP+, "lanplus", UDP 623), with github.com/bougou/go-ipmi. Each call
// opens a session, does its work and closes the session: BMCs hold few
// sessions, and an idle one times out anyway.
package ipmi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"

	"moobi/power"
)

// Controller talks to one BMC.
type Controller struct {
	Host     string
	Port     int
	User     string
	Password string
	// Timeout bounds each UDP exchange (default 2 s); it is tried 3 times.
	Timeout time.Duration
}

var _ power.Controller = (*Controller)(nil)

// session opens an RMCP+ session and runs fn in it.
func (c *Controller) session(ctx context.Context, fn func(*client.Client) error) error {
	cl, err := client.NewClient(c.Host, c.Port, c.User, c.Password)
	if err != nil {
		return fmt.Errorf("IPMI %s:%d: %w", c.Host, c.Port, err)
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	// Suite 17 (HMAC-SHA256, AES) first, then 3 (HMAC-SHA1, AES), the
	// suite nearly every BMC has. Naming them skips Get Channel Cipher
	// Suites, which some BMCs (ipmi_sim) never answer: 6 s lost per call.
	// Operator privilege is what chassis control and boot options need:
	// an operator account works, and an administrator's logs in as less.
	cl = cl.WithTimeout(timeout).WithRetry(2).WithCipherSuiteID(types.CipherSuiteID17, types.CipherSuiteID3).
		WithMaxPrivilegeLevel(types.PrivilegeLevelOperator)
	if err := cl.Connect(ctx); err != nil {
		return fmt.Errorf("IPMI %s:%d: open session as %q: %w", c.Host, c.Port, c.User, classify(err))
	}
	defer cl.Close(context.WithoutCancel(ctx))
	if err := fn(cl); err != nil {
		return fmt.Errorf("IPMI %s:%d: %w", c.Host, c.Port, classify(err))
	}
	return nil
}

// classify marks refused credentials and silence with power's errors.
func classify(err error) error {
	msg := strings.ToLower(err.Error())
	switch {
	case errors.Is(err, client.ErrRAKPAuthentication), strings.Contains(msg, "rakp authentication failed"):
		// The library's message lists every cipher suite tried: the
		// cause is enough.
		return fmt.Errorf("%w (RAKP authentication code mismatch: a wrong password)", power.ErrAuth)
	case strings.Contains(msg, "unauthorized name"), strings.Contains(msg, "invalid integrity check"),
		strings.Contains(msg, "unauthorized role"):
		return fmt.Errorf("%w: %v", power.ErrAuth, err)
	case strings.Contains(msg, "timeout"), strings.Contains(msg, "i/o timeout"), strings.Contains(msg, "deadline"),
		strings.Contains(msg, "no matching ipmi response"),
		strings.Contains(msg, "connection refused"), strings.Contains(msg, "no route to host"),
		strings.Contains(msg, "host is down"), strings.Contains(msg, "network is unreachable"):
		return fmt.Errorf("%w: %v", power.ErrUnreachable, err)
	}
	return err
}

// Status reads the chassis power state (Get Chassis Status).
func (c *Controller) Status(ctx context.Context) (power.State, error) {
	st := power.Unknown
	err := c.session(ctx, func(cl *client.Client) error {
		s, err := status(ctx, cl)
		st = s
		return err
	})
	return st, err
}

func status(ctx context.Context, cl *client.Client) (power.State, error) {
	res, err := cl.GetChassisStatus(ctx)
	if err != nil {
		return power.Unknown, fmt.Errorf("get chassis status: %w", err)
	}
	if res.PowerIsOn {
		return power.On, nil
	}
	return power.Off, nil
}

func control(ctx context.Context, cl *client.Client, ctl chassis.ChassisControl, what string) error {
	if _, err := cl.ChassisControl(ctx, ctl); err != nil {
		return fmt.Errorf("chassis control %s: %w", what, err)
	}
	return nil
}

// On sends Chassis Control "power up".
func (c *Controller) On(ctx context.Context) error {
	return c.session(ctx, func(cl *client.Client) error { return control(ctx, cl, chassis.ChassisControlPowerUp, "power up") })
}

// Off sends Chassis Control "power down".
func (c *Controller) Off(ctx context.Context) error {
	return c.session(ctx, func(cl *client.Client) error { return control(ctx, cl, chassis.ChassisControlPowerDown, "power down") })
}

// Cycle sends "power cycle" to a host that is on, "power up" to one that is off.
func (c *Controller) Cycle(ctx context.Context) error {
	return c.session(ctx, func(cl *client.Client) error { return cycle(ctx, cl) })
}

func cycle(ctx context.Context, cl *client.Client) error {
	st, err := status(ctx, cl)
	if err != nil {
		return err
	}
	if st == power.Off {
		return control(ctx, cl, chassis.ChassisControlPowerUp, "power up")
	}
	return control(ctx, cl, chassis.ChassisControlPowerCycle, "power cycle")
}

// PXE sets the boot flags (system boot options parameter 5) to "force
// PXE", valid for the next boot only, then cycles the host.
func (c *Controller) PXE(ctx context.Context) error {
	return c.session(ctx, func(cl *client.Client) error {
		// Without the set-in-progress dance (parameter 0), which not every
		// BMC supports; ipmitool's `chassis bootdev pxe` does the same.
		if err := cl.SetBootDevice(ctx, types.BootDeviceSelectorForcePXE, types.BIOSBootTypeLegacy, false); err != nil {
			return fmt.Errorf("set boot flags to PXE: %w", err)
		}
		return cycle(ctx, cl)
	})
}
