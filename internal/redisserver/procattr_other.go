//go:build !linux

package redisserver

import "syscall"

// procAttr returns nil: outside Linux the server keeps the defaults.
func procAttr(Options) *syscall.SysProcAttr { return nil }
