package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/xdpsvc/lb/cluster"
)

const keygenUsage = `usage: appliance keygen [FILE]

Make a new random gossip key (32 bytes, base64, as consul keygen prints it). With FILE it is
written there with mode 0600 (an existing file is never overwritten); without, it is printed.
Every appliance of a cluster uses the same key (cluster.secretKeyFile).
`

// cmdKeygen makes a gossip key: appliance keygen [FILE].
func cmdKeygen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	if exit, ok := parseFlags(fs, args, keygenUsage, stdout, stderr); !ok {
		return exit
	}
	if fs.NArg() > 1 {
		fmt.Fprint(stderr, keygenUsage)
		return 2
	}
	k, err := cluster.GenerateKey()
	if err != nil {
		fmt.Fprintf(stderr, "appliance keygen: %v\n", err)
		return 1
	}
	if fs.NArg() == 0 {
		stdout.Write(cluster.EncodeKey(k))
		return 0
	}
	path := fs.Arg(0)
	if err := cluster.WriteKeyFile(path, k); err != nil {
		if errors.Is(err, os.ErrExist) {
			err = fmt.Errorf("%s exists: a key file is never overwritten (remove it first if you mean to replace the cluster's key)", path)
		}
		fmt.Fprintf(stderr, "appliance keygen: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "wrote %s (mode 0600)\n", path)
	return 0
}
