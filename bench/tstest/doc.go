// Package tstest is the project's home for test infrastructure: the root requirement of privileged
// tests, bounded waits for eventual conditions, and a log writer that sends a component's output to
// the test log.
//
// Any package's tests may import it; no non-test code does. It imports the standard library only, so
// that the tests of the leaf packages (packet, conntrack) can use it without an import cycle.
//
// # Concurrency
//
// Every function may be called from the test's goroutine; a LogWriter may be written from
// any goroutine until the test ends.
package tstest
