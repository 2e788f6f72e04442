//go:build !linux

package main

import "syscall"

// childProcAttr returns nil: outside Linux the child keeps the defaults.
func childProcAttr() *syscall.SysProcAttr { return nil }
