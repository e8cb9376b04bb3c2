// Package redfish is a power.Controller for BMCs that speak DMTF Redfish
// over HTTPS, with github.com/stmcginnis/gofish. It drives the service's
// first ComputerSystem: ComputerSystem.Reset for power, a PATCH of
// Boot.BootSourceOverrideTarget=Pxe with BootSourceOverrideEnabled=Once for
// a network boot. It authenticates with HTTP basic authentication on every
// request (no session is left open on the BMC), and verifies the BMC's TLS
// certificate unless told not to.
package redfish

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/common"
	rf "github.com/stmcginnis/gofish/redfish"

	"moobi/power"
)

// Controller talks to one Redfish service.
type Controller struct {
	// Endpoint is the service's scheme and host, e.g. "https://10.0.0.5".
	Endpoint string
	User     string
	Password string
	// InsecureTLS skips the verification of the BMC's certificate.
	InsecureTLS bool
	// RootCAs, if set, replaces the system's roots for that verification.
	RootCAs *x509.CertPool
	// Timeout bounds each HTTP request (default 10 s).
	Timeout time.Duration
}

var _ power.Controller = (*Controller)(nil)

// system connects and finds the ComputerSystem to drive.
func (c *Controller) system(ctx context.Context, fn func(*rf.ComputerSystem) error) error {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.RootCAs, InsecureSkipVerify: c.InsecureTLS},
		TLSHandshakeTimeout: timeout,
		DisableKeepAlives:   true,
	}
	defer tr.CloseIdleConnections()
	api, err := gofish.ConnectContext(ctx, gofish.ClientConfig{
		Endpoint:   c.Endpoint,
		Username:   c.User,
		Password:   c.Password,
		BasicAuth:  true,
		Insecure:   c.InsecureTLS,
		HTTPClient: &http.Client{Transport: tr, Timeout: timeout},
	})
	if err != nil {
		return fmt.Errorf("Redfish %s: %w", c.Endpoint, classify(ctx, err))
	}
	systems, err := api.Service.Systems()
	if err != nil {
		return fmt.Errorf("Redfish %s: list systems as %q: %w", c.Endpoint, c.User, classify(ctx, err))
	}
	if len(systems) == 0 {
		return fmt.Errorf("Redfish %s: the service lists no ComputerSystem", c.Endpoint)
	}
	if err := fn(systems[0]); err != nil {
		return fmt.Errorf("Redfish %s%s: %w", c.Endpoint, systems[0].ODataID, classify(ctx, err))
	}
	return nil
}

func classify(ctx context.Context, err error) error {
	var re *common.Error
	if errors.As(err, &re) && (re.HTTPReturnedStatusCode == http.StatusUnauthorized || re.HTTPReturnedStatusCode == http.StatusForbidden) {
		return fmt.Errorf("%w (HTTP %d)", power.ErrAuth, re.HTTPReturnedStatusCode)
	}
	// Collections wrap their members' errors in text.
	if msg := err.Error(); strings.Contains(msg, `"error":"401:`) || strings.Contains(msg, `"error":"403:`) {
		return fmt.Errorf("%w (HTTP 401/403)", power.ErrAuth)
	}
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return fmt.Errorf("the BMC's TLS certificate does not verify (set bmc.insecure_tls: true to skip the check): %w", err)
	}
	var ne interface{ Timeout() bool }
	if ctx.Err() != nil || errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %v", power.ErrUnreachable, err)
	}
	return err
}

// Status reads ComputerSystem.PowerState.
func (c *Controller) Status(ctx context.Context) (power.State, error) {
	st := power.Unknown
	err := c.system(ctx, func(s *rf.ComputerSystem) error {
		st = state(s)
		return nil
	})
	return st, err
}

func state(s *rf.ComputerSystem) power.State {
	switch s.PowerState {
	case rf.OnPowerState, rf.PoweringOffPowerState:
		return power.On
	case rf.OffPowerState, rf.PoweringOnPowerState:
		return power.Off
	}
	return power.Unknown
}

func reset(s *rf.ComputerSystem, t rf.ResetType) error {
	if err := s.Reset(t); err != nil {
		return fmt.Errorf("ComputerSystem.Reset %s: %w", t, err)
	}
	return nil
}

// On resets with ResetType On.
func (c *Controller) On(ctx context.Context) error {
	return c.system(ctx, func(s *rf.ComputerSystem) error { return reset(s, rf.OnResetType) })
}

// Off resets with ResetType ForceOff.
func (c *Controller) Off(ctx context.Context) error {
	return c.system(ctx, func(s *rf.ComputerSystem) error { return reset(s, rf.ForceOffResetType) })
}

// Cycle resets with ForceRestart a system that is on, On one that is off.
func (c *Controller) Cycle(ctx context.Context) error {
	return c.system(ctx, cycle)
}

func cycle(s *rf.ComputerSystem) error {
	if state(s) == power.Off {
		return reset(s, rf.OnResetType)
	}
	return reset(s, rf.ForceRestartResetType)
}

// PXE sets a one-time boot override to Pxe, then cycles the system.
func (c *Controller) PXE(ctx context.Context) error {
	return c.system(ctx, func(s *rf.ComputerSystem) error {
		err := s.SetBoot(rf.Boot{
			BootSourceOverrideTarget:  rf.PxeBootSourceOverrideTarget,
			BootSourceOverrideEnabled: rf.OnceBootSourceOverrideEnabled,
		})
		if err != nil {
			return fmt.Errorf("set the boot override to Pxe, once: %w", err)
		}
		return cycle(s)
	})
}
