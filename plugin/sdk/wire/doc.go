// Package wire encodes and decodes the bytes taskiq-go puts on a broker and in a
// result backend: the message and result JSON of Python taskiq (see WIRE.md in the
// design documents), so Go and Python producers and workers can share a queue.
//
// The host parses a message body once; plugins treat it as opaque bytes unless
// they are middlewares, which receive it parsed.
package wire
