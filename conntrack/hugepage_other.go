//go:build !linux

package conntrack

func adviseHugePages[T any](s []T) {}

func populate[T any](s []T) {}
