package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// setFlags are the names of the flags given on the command line (not left at their defaults).
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// runInterruptible runs a measuring command with a context that SIGINT and SIGTERM cancel, and returns
// its exit code: 0, 130 when interrupted, 1 on another error (printed as "name: err").
func runInterruptible(name string, stderr io.Writer, run func(ctx context.Context) error) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		if errors.Is(err, context.Canceled) {
			return 130
		}
		return 1
	}
	return 0
}

// replotResults rewrites a command's outputs from its results.json (rewrite) and prints the markdown at mdPath.
func replotResults(name string, stdout, stderr io.Writer, mdPath string, rewrite func() error) int {
	if err := rewrite(); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return printMarkdown(name, stdout, stderr, mdPath, "")
}

// printMarkdown prints the results.md at path, then a blank line and footer.
func printMarkdown(name string, stdout, stderr io.Writer, path, footer string) int {
	md, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n%s", md, footer)
	return 0
}
