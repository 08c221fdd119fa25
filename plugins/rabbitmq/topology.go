package taskiqrabbitmq

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// queueSpec is one queue declaration.
type queueSpec struct {
	name    string
	durable bool
	args    amqp.Table
	// explicit maps the arguments the user set in the config to the
	// attribute that set them: an existing queue must match those. Every
	// other argument (and durable) is adopted from an existing queue.
	explicit map[string]string
}

func (s queueSpec) queueType() string {
	if t, ok := s.args["x-queue-type"].(string); ok {
		return t
	}
	return queueClassic
}

func (s queueSpec) maxPriority() int {
	n, _ := tableInt(s.args["x-max-priority"])
	return int(n)
}

func tableInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	}
	return 0, false
}

// taskQueueSpec is the declaration of a task queue (the default queue or
// another one messages are routed to) in the configured layout.
func taskQueueSpec(o options, name string) queueSpec {
	s := queueSpec{name: name, durable: o.compat != compat05, args: amqp.Table{
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": o.deadLetter,
	}, explicit: map[string]string{}}
	if o.queueType == queueQuorum {
		s.args["x-queue-type"] = queueQuorum
		if o.deliveryLimit > 0 {
			s.args["x-delivery-limit"] = int64(o.deliveryLimit)
			if o.deliveryLimitSet {
				s.explicit["x-delivery-limit"] = "delivery_limit"
			}
		}
	} else if o.compat != compat05 {
		// aio-pika 0.6 always sends x-queue-type; 0.5 never does.
		s.args["x-queue-type"] = queueClassic
	}
	if o.queueTypeSet {
		s.explicit["x-queue-type"] = "queue_type"
	}
	if o.maxPriority > 0 {
		s.args["x-max-priority"] = int64(o.maxPriority)
		s.explicit["x-max-priority"] = "max_priority"
	}
	withExpiry(&s, o)
	return s
}

// withExpiry adds queue_expires to a declaration.
func withExpiry(s *queueSpec, o options) {
	if o.queueExpires > 0 {
		s.args["x-expires"] = o.queueExpires.Milliseconds()
		if s.explicit == nil {
			s.explicit = map[string]string{}
		}
		s.explicit["x-expires"] = "queue_expires"
	}
}

// deadLetterSpec is the declaration of the dead-letter queue.
func deadLetterSpec(o options) queueSpec {
	s := queueSpec{name: o.deadLetter, durable: o.compat != compat05, args: amqp.Table{}}
	if o.compat != compat05 {
		s.args["x-queue-type"] = queueQuorum
	}
	withExpiry(&s, o)
	return s
}

// pythonDelaySpec is the declaration of taskiq-aio-pika's own delay queue
// (per-message TTL, dead-lettered to the default queue). Only Python
// producers use it; it is declared so that they find it as they expect.
func pythonDelaySpec(o options) queueSpec {
	if o.compat == compat05 {
		return queueSpec{name: o.delayQueue, args: amqp.Table{
			"x-dead-letter-exchange":    "",
			"x-dead-letter-routing-key": o.queue,
		}}
	}
	return queueSpec{name: o.delayQueue, durable: true, args: amqp.Table{
		"x-dead-letter-exchange":    o.exchange,
		"x-dead-letter-routing-key": o.queue,
		"x-queue-type":              queueQuorum,
	}}
}

// inequivalent matches the reason of the server's PRECONDITION_FAILED reply
// to a declaration that differs from an existing entity.
var inequivalent = regexp.MustCompile(`inequivalent arg '([^']+)' for (queue|exchange) '((?:[^']|'[^ ])*)' in vhost '[^']*': received (.+) but current is (.+)$`)

// mismatch is one argument an existing queue or exchange has another value
// of than the declaration.
type mismatch struct {
	arg, kind, name string
	received        argValue
	current         argValue
}

// argValue is one side of a mismatch as the server reports it.
type argValue struct {
	present bool
	text    string
	typ     string
}

func (v argValue) String() string {
	if !v.present {
		return "none"
	}
	return strconv.Quote(v.text)
}

// value returns the argument as it goes into a declaration.
func (v argValue) value() any {
	switch v.typ {
	case "signedint", "long", "short", "byte", "unsignedbyte", "unsignedshort", "unsignedint":
		if n, err := strconv.ParseInt(v.text, 10, 64); err == nil {
			return n
		}
	case "bool":
		return v.text == "true"
	}
	return v.text
}

var typedValue = regexp.MustCompile(`^the value '(.*)' of type '([a-z]+)'$`)

func parseArgValue(s string) argValue {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), `"`))
	if s == "none" {
		return argValue{}
	}
	if m := typedValue.FindStringSubmatch(s); m != nil {
		return argValue{present: true, text: m[1], typ: m[2]}
	}
	return argValue{present: true, text: strings.Trim(s, "'")}
}

// parseMismatch reads a PRECONDITION_FAILED reason; ok is false for other
// failures.
func parseMismatch(reason string) (mismatch, bool) {
	m := inequivalent.FindStringSubmatch(strings.TrimSuffix(reason, `"`))
	if m == nil {
		return mismatch{}, false
	}
	return mismatch{arg: m[1], kind: m[2], name: m[3], received: parseArgValue(m[4]), current: parseArgValue(m[5])}, true
}

// adopt changes the declaration to what the server has for m.arg.
func (s *queueSpec) adopt(m mismatch) {
	if m.arg == "durable" {
		s.durable = m.current.text == "true"
		return
	}
	args := amqp.Table{}
	for k, v := range s.args {
		args[k] = v
	}
	if m.current.present {
		args[m.arg] = m.current.value()
	} else {
		delete(args, m.arg)
	}
	s.args = args
}

// maxReconcile bounds the declare-and-adopt rounds: one per argument.
const maxReconcile = 16

// isCode reports whether err is the server's reply code.
func isCode(err error, code int) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == code
}

// declareQueue declares s on a channel of its own (a refused declaration
// closes the channel). When the queue exists with other arguments, the
// server's refusal names the argument and both values: an argument the
// user did not set is adopted and the declaration repeated; one the user
// set fails with an error naming it. The declaration that went through is
// returned, so the caller knows the queue's real type and priorities.
func declareQueue(conn *amqp.Connection, s queueSpec) (queueSpec, error) {
	for range maxReconcile {
		ch, err := conn.Channel()
		if err != nil {
			return s, err
		}
		_, err = ch.QueueDeclare(s.name, s.durable, false, false, false, s.args)
		if err == nil {
			_ = ch.Close()
			return s, nil
		}
		var ae *amqp.Error
		if !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
			return s, fmt.Errorf("declare queue %q: %w", s.name, err)
		}
		m, ok := parseMismatch(ae.Reason)
		if !ok {
			return s, fmt.Errorf("declare queue %q: %w", s.name, err)
		}
		if attr, set := s.explicit[m.arg]; set {
			return s, sdk.AttrError(attr, "queue %q already exists with %s = %s, but the config asks for %s; "+
				"change %s to match, or delete the queue so that it is declared again", s.name, m.arg, m.current, m.received, attr)
		}
		s.adopt(m)
	}
	return s, fmt.Errorf("declare queue %q: its arguments could not be reconciled in %d rounds", s.name, maxReconcile)
}

// declareExchange declares the topic exchange, adopting durability and a
// direct type from an existing one. It returns the exchange's type.
func declareExchange(conn *amqp.Connection, name string, durable bool) (string, error) {
	kind := amqp.ExchangeTopic
	for range maxReconcile {
		ch, err := conn.Channel()
		if err != nil {
			return kind, err
		}
		err = ch.ExchangeDeclare(name, kind, durable, false, false, false, nil)
		if err == nil {
			_ = ch.Close()
			return kind, nil
		}
		var ae *amqp.Error
		if !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
			return kind, fmt.Errorf("declare exchange %q: %w", name, err)
		}
		m, ok := parseMismatch(ae.Reason)
		if !ok {
			return kind, fmt.Errorf("declare exchange %q: %w", name, err)
		}
		switch {
		case m.arg == "durable":
			durable = m.current.text == "true"
		case m.arg == "type" && m.current.text == amqp.ExchangeDirect:
			kind = amqp.ExchangeDirect
		default:
			return kind, sdk.AttrError("exchange", "exchange %q already exists with %s = %s, but this plugin needs %s; "+
				"name another exchange, or delete it so that it is declared again", name, m.arg, m.current, m.received)
		}
	}
	return kind, fmt.Errorf("declare exchange %q: its arguments could not be reconciled", name)
}
