package testnet

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// LogFile is the name of a node's log inside its home, and RelayLogFile that
// of a relay's.
const (
	LogFile      = "node.log"
	RelayLogFile = "relay.log"
)

// start starts `exe ARGS...` as its own process group in p's home, its output
// appended to the log there. The returned channel is closed once the process
// has exited and been reaped.
func start(exe string, p proc) (int, <-chan struct{}, error) {
	logf, err := os.OpenFile(filepath.Join(p.home, p.log), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, nil, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- %s: plug testnet starts %s\n", time.Now().Format(time.RFC3339), p.name)
	cmd := exec.Command(exe, p.args...)
	cmd.Dir = p.home
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 0, nil, fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	return cmd.Process.Pid, done, nil
}

// alive reports whether pid runs and is still the node whose home is home:
// a PID reused by an unrelated process after the node died counts as dead.
func alive(pid int, home string) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		// No procfs (not Linux): trust the signal. A vanished process is dead.
		_, statErr := os.Stat("/proc/self")
		return statErr != nil
	}
	// A zombie has an empty command line; a reused PID has another one.
	return bytes.Contains(cmdline, []byte(home))
}

// signalNode sends sig to the node's process group (the node and anything it
// started), falling back to the process alone.
func signalNode(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(-pid, sig); err == nil {
		return nil
	}
	return syscall.Kill(pid, sig)
}

// waitExit waits up to d for the node to die; it reports whether it did.
func waitExit(pid int, home string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if !alive(pid, home) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lockDir takes an exclusive lock on DIR/testnet.lock, so that concurrent
// testnet commands on one directory update the manifest one at a time.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, "testnet.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// exitLine returns the line a `plug` process printed as its error before it
// exited ("plug: ..."; a damaged database names the file and the repair there),
// from the log's part since the last start, or "" when there is none. Error
// messages put it first: the tail of a log is often noise after it.
func exitLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if i := bytes.LastIndex(b, []byte("\n--- ")); i >= 0 {
		b = b[i+1:]
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		if l := lines[i]; bytes.HasPrefix(l, []byte("plug: ")) && !bytes.HasPrefix(l, []byte("plug: warning: ")) {
			return string(l)
		}
	}
	return ""
}

// stoppedError describes node name that is not running, from its log.
func stoppedError(name, home string) error {
	path := filepath.Join(home, LogFile)
	tail := logTail(path, 15)
	if l := exitLine(path); l != "" {
		return fmt.Errorf("node %s stopped: %s\nthe end of its log (%s):\n%s", name, strings.TrimPrefix(l, "plug: "), path, tail)
	}
	return fmt.Errorf("node %s stopped; the end of its log (%s):\n%s", name, path, tail)
}

// logTail returns the last lines of a log file, for error messages.
func logTail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	b = bytes.TrimRight(b, "\n")
	for i, n := len(b)-1, 0; i >= 0; i-- {
		if b[i] == '\n' {
			if n++; n == lines {
				return string(b[i+1:])
			}
		}
	}
	return string(b)
}
