package main

import "syscall"

// childProcAttr puts redis-server in its own process group, so a terminal's
// Ctrl-C reaches only the harness (which then stops it), and has the kernel
// kill it if the harness dies without stopping it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
