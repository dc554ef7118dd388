//go:build !linux

package wstransport

import (
	"errors"
	"syscall"
)

// poller is Linux's epoll(7); elsewhere every connection keeps a reading
// goroutine (see Transport.read).
type poller struct{}

func newPoller() (*poller, error) {
	return nil, errors.New("wstransport: readiness polling needs Linux")
}

func (*poller) add(syscall.RawConn, func()) (uint64, error) { return 0, errors.ErrUnsupported }
func (*poller) arm(syscall.RawConn, uint64) error           { return errors.ErrUnsupported }
func (*poller) remove(uint64)                               {}
