//go:build !linux

package bench

import (
	"errors"
	"time"
)

var errNotLinux = errors.New("only supported on Linux")

func raiseNoFile() (uint64, error) { return 0, errNotLinux }

func rssKiB(int) (int64, error) { return 0, errNotLinux }

func cpuSelf() time.Duration { return 0 }

func cpuOf(int) (time.Duration, error) { return 0, errNotLinux }

func noFileOf(int) (uint64, error) { return 0, errNotLinux }
