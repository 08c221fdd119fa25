package sdk

import "github.com/hashicorp/go-plugin"

// pluginSetName is the single plugin name of the go-plugin plugin set; the
// role is chosen by Configure, not by dispensing different names.
const pluginSetName = "taskiq"

// grpcPlugin is the go-plugin glue: on the plugin side it registers the
// services of server; on the host side it hands out the raw connection and
// GRPCBroker, which Client wraps.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	server *pluginServer
}

func pluginSets(server *pluginServer) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {pluginSetName: &grpcPlugin{server: server}},
	}
}
