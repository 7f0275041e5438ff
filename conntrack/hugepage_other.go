//go:build !linux

package conntrack

func adviseHugePages[T any](s []T) {}
