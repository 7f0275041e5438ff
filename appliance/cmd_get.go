package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/xdpsvc/lb/appliance/admin"
	"github.com/xdpsvc/lb/appliance/config"
)

// cmdGet queries a running node's admin API: appliance get services|endpoints|flows|members
// [--admin URL|unix:///PATH | --config FILE] [--token-file FILE] [-o table|json]. The lists
// are open on the node's TCP listener; the socket and the token work too.
func cmdGet(args []string, stdout, stderr io.Writer) int {
	const use = "usage: appliance get services|endpoints|flows|members [--admin URL|unix:///PATH | --config FILE] [--token-file FILE] [-o table|json]"
	if len(args) == 0 {
		fmt.Fprintln(stderr, use)
		return 2
	}
	if wantsHelp(args[:1]) {
		fmt.Fprintln(stdout, use)
		return 0
	}
	what := args[0]
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	adminURL := fs.String("admin", "", "admin API address, host:port or unix:///PATH (default: the config's admin.listen, else "+config.DefaultConfig().Admin.Listen+")")
	tokenFile := fs.String("token-file", "", "file holding the node's admin token (mode 0600), sent as a bearer token")
	cfgPath := fs.String("config", "", "read the admin address from this appliance config")
	output := fs.String("o", "table", "output format: table or json")
	limit := fs.Int("limit", 1000, fmt.Sprintf("flows: at most this many (the node caps it at %d)", admin.MaxListLimit))
	if exit, ok := parseFlags(fs, args[1:], use, stdout, stderr); !ok {
		return exit
	}
	if fs.NArg() > 0 || (*output != "table" && *output != "json") {
		fmt.Fprintln(stderr, use)
		return 2
	}
	c, err := adminClient(*adminURL, *cfgPath, *tokenFile, false)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var (
		v     any
		table func() error
	)
	switch what {
	case "services", "service", "svc":
		var s []admin.ServiceStatus
		v, table = &s, func() error { return admin.WriteServices(stdout, s, time.Now()) }
		what = "services"
	case "endpoints", "ep":
		var s []admin.EndpointStatus
		v, table = &s, func() error { return admin.WriteEndpoints(stdout, s) }
		what = "endpoints"
	case "flows":
		var s []admin.FlowStatus
		v, table = &s, func() error { return admin.WriteFlows(stdout, s) }
		what = fmt.Sprintf("flows?limit=%d", *limit)
	case "members":
		var s []admin.MemberStatus
		v, table = &s, func() error { return admin.WriteMembers(stdout, s) }
	default:
		fmt.Fprintf(stderr, "appliance get: unknown resource %q\n%s\n", what, use)
		return 2
	}
	if err := c.Get(ctx, "/api/v1/"+what, v); err != nil {
		fmt.Fprintf(stderr, "appliance get: %v\n", err)
		return 1
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return 1
		}
		return 0
	}
	if err := table(); err != nil {
		return 1
	}
	return 0
}

// adminClient is the client of `appliance get` and `appliance capture`: the node at addr, else
// the config's at cfgPath (its admin.socket when this process may connect to it, else its
// admin.listen), else (with preferSocket, when it exists) the socket at admin.DefaultSocketPath,
// else the default admin.listen. The token is tokenFile's, else over TCP the config's
// admin.tokenFile's: one this process may not read is skipped by get (the lists need no token)
// and an error for capture (preferSocket).
func adminClient(addr, cfgPath, tokenFile string, preferSocket bool) (*admin.Client, error) {
	cfgToken := ""
	if addr == "" && cfgPath != "" {
		cfg, err := config.Load(cfgPath)
		if err != nil {
			return nil, err
		}
		addr = cfg.Admin.Listen
		if usableSocket(cfg.Admin.Socket) {
			addr = "unix://" + cfg.Admin.Socket
		} else {
			cfgToken = cfg.Admin.TokenFile
		}
	}
	if addr == "" && preferSocket && usableSocket(admin.DefaultSocketPath) {
		addr = "unix://" + admin.DefaultSocketPath
	}
	if addr == "" {
		addr = config.DefaultConfig().Admin.Listen
	}
	c := &admin.Client{Base: addr}
	switch {
	case tokenFile != "":
		tok, err := admin.ReadTokenFile(tokenFile)
		if err != nil {
			return nil, err
		}
		c.Token = tok
	case cfgToken != "":
		tok, err := admin.ReadTokenFile(cfgToken)
		if err != nil && preferSocket {
			return nil, fmt.Errorf("admin.tokenFile: %w", err)
		}
		c.Token = tok
	}
	return c, nil
}

// usableSocket reports whether path is a Unix socket this process may connect to (write
// permission).
func usableSocket(path string) bool {
	if path == "" {
		return false
	}
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().Type() == os.ModeSocket && syscall.Access(path, 2 /* W_OK */) == nil
}
