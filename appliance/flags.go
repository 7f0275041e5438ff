package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// parseFlags parses a subcommand's flags. `-h` or `--help` prints the subcommand's usage and its
// flags to stdout and ends the command with exit 0, as users of kubectl and the Go tools expect;
// a bad flag prints the error and the usage to stderr and ends it with exit 2. ok is false when the
// command must return exit at once.
func parseFlags(fs *flag.FlagSet, args []string, usage string, stdout, stderr io.Writer) (exit int, ok bool) {
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if wantsHelp(args) {
		fs.SetOutput(stdout)
		fs.Usage()
		return 0, false
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) { // a spelling wantsHelp does not know
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// wantsHelp reports whether a help flag comes before the end of the flags.
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help", "--h":
			return true
		case "--":
			return false
		}
	}
	return false
}
