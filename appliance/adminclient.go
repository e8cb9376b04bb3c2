package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"moobi/bootserver/adminauth"
	"moobi/inventory"
)

// adminFlags are the flags of the commands that talk to the appliance
// with the admin token.
type adminFlags struct {
	config, server, tokenFile *string
}

func newAdminFlags(fs *flag.FlagSet) adminFlags {
	return adminFlags{
		config:    fs.String("config", "hosts.yaml", "inventory file: gives the default --server and --token-file"),
		server:    fs.String("server", "", "the appliance's HTTP root (default: http://127.0.0.1:http_port from --config)"),
		tokenFile: fs.String("token-file", "", "the admin token (default: data_dir/"+adminauth.File+" from --config)"),
	}
}

// resolve fills the server and token from --config where not given, and
// reads the token.
func (a adminFlags) resolve() (server, token string, err error) {
	server, tokenFile := *a.server, *a.tokenFile
	if server == "" || tokenFile == "" {
		inv, err := inventory.Load(*a.config)
		if err != nil {
			return "", "", fmt.Errorf("--server and --token-file default from --config %s: %w", *a.config, err)
		}
		if server == "" {
			server = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(inv.Appliance.HTTPPort))
		}
		if tokenFile == "" {
			tokenFile = adminauth.Path(inv.Appliance.DataDir)
		}
	}
	token, err = adminauth.ReadFile(tokenFile)
	return strings.TrimRight(server, "/"), token, err
}

// adminRequest sends a request with the admin token and decodes a JSON
// answer of one of the ok codes into out; any other answer is an error
// carrying the appliance's message.
func adminRequest(ctx context.Context, method, server, token, path string, body, out any, ok ...int) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	u := server + path
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	for _, c := range ok {
		if resp.StatusCode == c {
			if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
				return fmt.Errorf("reading %s: %w", u, err)
			}
			return nil
		}
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, strings.TrimSpace(string(msg)))
}
