//go:build unix

package sdk

import "syscall"

// privateUmask sets the process umask so that the unix socket go-plugin's
// Serve creates next (mode 0777 less the umask) is 0600 whatever umask the
// plugin was started with, and returns the function that puts the original
// umask back, for the plugin's own files. Call the restore once the listener
// exists: go-plugin builds the gRPC server (ServeConfig.GRPCServer) after
// listening and before it tells the host the address.
func privateUmask() (restore func()) {
	old := syscall.Umask(0o177)
	return func() { syscall.Umask(old) }
}
