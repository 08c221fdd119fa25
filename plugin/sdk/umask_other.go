//go:build !unix

package sdk

// privateUmask does nothing where go-plugin listens on TCP (Windows).
func privateUmask() (restore func()) { return func() {} }
