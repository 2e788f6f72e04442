package redisserver

import "syscall"

// procAttr sets the parent-death signal and the process group the options
// ask for.
func procAttr(o Options) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: o.OwnGroup}
	if o.DieWithParent {
		a.Pdeathsig = syscall.SIGKILL
	}
	return a
}
