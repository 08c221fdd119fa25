package sdk

import "github.com/hashicorp/go-plugin"

// ProtocolVersion is the major version of the plugin protocol this SDK
// speaks: go-plugin negotiates it and it names the proto package
// (taskiq.plugin.v1). Inside a major, changes are additive and optional
// features are capability flags; a new major means plugins are rebuilt.
const ProtocolVersion = 1

// The handshake cookie tells a plugin binary that a taskiq-go host started
// it. It is a usability check (a binary run by hand explains itself instead
// of hanging), not a security measure.
const (
	MagicCookieKey   = "TASKIQ_PLUGIN_MAGIC_COOKIE"
	MagicCookieValue = "ab2c6b4a0aa86965297e13fda2db591d23fd6a94bd8f72ef"
)

func handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  ProtocolVersion,
		MagicCookieKey:   MagicCookieKey,
		MagicCookieValue: MagicCookieValue,
	}
}
