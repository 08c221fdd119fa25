package taskiqredis

import (
	"errors"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

func scheduleSchema() sdk.Schema {
	attrs := connectionAttributes()
	attrs = append(attrs,
		sdk.Attribute{Name: "prefix", Type: sdk.TypeString, Default: "schedule", Description: "Key prefix " +
			"of taskiq-redis's ListRedisScheduleSource: <prefix>:data:<id>, <prefix>:cron, <prefix>:interval, " +
			"<prefix>:time:<YYYY-MM-DDTHH:MM>. Use the prefix the Python side uses to share its schedules."},
		sdk.Attribute{Name: "serializer", Type: sdk.TypeString, Default: "json", Description: `How ` +
			`schedule values are stored: "json" (taskiq's JSONSerializer) or "pickle" (protocol 4, the default of ` +
			`Python's ListRedisScheduleSource; plain data only: a one-shot time that Python pickled as a datetime is skipped).`},
	)
	return sdk.Schema{Attributes: attrs}
}

type scheduleConfig struct {
	connConfig
	Prefix     string `json:"prefix"`
	Serializer string `json:"serializer"`
}

type scheduleOptions struct {
	prefix string
	codec  scheduleCodec
}

func decodeScheduleConfig(cfg sdk.Config) (connConfig, scheduleOptions, error) {
	var c scheduleConfig
	if err := cfg.Decode(&c); err != nil {
		return connConfig{}, scheduleOptions{}, err
	}
	var errs []error
	o := scheduleOptions{prefix: c.Prefix}
	if o.prefix == "" {
		o.prefix = "schedule"
	}
	switch c.Serializer {
	case "", "json":
		o.codec = jsonScheduleCodec{}
	case "pickle":
		o.codec = pickleScheduleCodec{}
	default:
		errs = append(errs, sdk.AttrError("serializer", "unknown serializer %q; use \"json\" or \"pickle\"", c.Serializer))
	}
	errs = append(errs, validateConn(&c.connConfig)...)
	if len(errs) > 0 {
		return connConfig{}, scheduleOptions{}, errors.Join(errs...)
	}
	return c.connConfig, o, nil
}

// connect opens the client of a role and picks its logger.
func connect(conn connConfig, cfg sdk.Config) (redis.UniversalClient, string, hclog.Logger, error) {
	client, addr, err := newClient(conn)
	if err != nil {
		return nil, "", nil, sdk.AttrError("url", "%v", err)
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return client, addr, log, nil
}
