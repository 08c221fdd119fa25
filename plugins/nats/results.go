package taskiqnats

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/taskiq-go/taskiq/internal/backoff"
	"github.com/taskiq-go/taskiq/internal/resultcodec"
	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// Serializers of the result backend: how results and progress are stored.
const (
	serializerJSON   = resultcodec.JSON   // the JSON of the wire format
	serializerPickle = resultcodec.Pickle // pickle protocol 4 of that JSON (Python taskiq's PickleSerializer)
)

// encode turns the JSON the host sends into the stored form.
func (r *resultBackend) encode(body []byte) ([]byte, error) {
	return resultcodec.Codec{Pickle: r.opts.serializer == serializerPickle}.Encode(body)
}

// decode turns a stored value of key back into JSON. A pickle is read only
// with serializer "pickle"; JSON is read with either.
func (r *resultBackend) decode(key string, stored []byte) ([]byte, error) {
	return resultcodec.Codec{Pickle: r.opts.serializer == serializerPickle}.Decode("the value of", key, stored)
}

// resultBackend stores results in a JetStream key-value bucket: key = task
// id, value = the result JSON; progress under "<task id>__progress".
//
// WaitResult is push-based: the first waiter starts one watch of the whole
// bucket (updates only), which hands every stored value to the waiters of
// its key; each waiter also reads the key once after registering (the
// result may be there already) and at poll_fallback, in case an update was
// missed while the connection was down.
type resultBackend struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	conn connOptions
	opts resultOptions
	log  hclog.Logger

	kvMu sync.Mutex
	kv   jetstream.KeyValue

	watchMu  sync.Mutex
	waiters  map[string]map[chan []byte]struct{}
	watching bool
	ctx      context.Context
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

const progressSuffix = "__progress"

func newResultBackend(_ context.Context, cfg sdk.Config) (*resultBackend, error) {
	conn, opts, err := decodeResultConfig(cfg)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	nc, js, err := connect(conn, log)
	if err != nil {
		return nil, err
	}
	r := &resultBackend{nc: nc, js: js, conn: conn, opts: opts, log: log, waiters: map[string]map[chan []byte]struct{}{}}
	r.ctx, r.stop = context.WithCancel(context.Background())
	return r, nil
}

func (r *resultBackend) wrap(op string, err error) error { return wrapErr(op, r.conn, r.nc, err) }

// bucket looks the bucket up, or creates it with result_ttl.
func (r *resultBackend) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	r.kvMu.Lock()
	defer r.kvMu.Unlock()
	if r.kv != nil {
		return r.kv, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.conn.requestTimeout)
	defer cancel()
	kv, err := r.js.KeyValue(ctx, r.opts.bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = r.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: r.opts.bucket, TTL: r.opts.ttl,
			Description: "taskiq-go results"})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) || errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = r.js.KeyValue(ctx, r.opts.bucket)
		}
	}
	if err != nil {
		return nil, r.wrap("key-value bucket "+r.opts.bucket, err)
	}
	r.kv = kv
	return kv, nil
}

// checkKey refuses task ids that are not valid key-value keys.
func checkKey(id string) error {
	if id == "" || strings.HasPrefix(id, ".") || strings.HasSuffix(id, ".") || strings.Contains(id, "..") {
		return fmt.Errorf("task id %q is not a valid key-value key", id)
	}
	for _, c := range id {
		if !(c == '-' || c == '_' || c == '=' || c == '.' || c == '/' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			return fmt.Errorf("task id %q is not a valid key-value key (letters, digits and -/_=. only)", id)
		}
	}
	return nil
}

// SetResults publishes every result to its key asynchronously and waits for
// the acknowledgements: one round trip for the batch.
func (r *resultBackend) SetResults(ctx context.Context, results []sdk.StoredResult) error {
	if _, err := r.bucket(ctx); err != nil {
		return err
	}
	futures := make([]jetstream.PubAckFuture, 0, len(results))
	for _, res := range results {
		if err := checkKey(res.TaskID); err != nil {
			return fmt.Errorf("nats set result: %w", err)
		}
		body, err := r.encode(res.Body)
		if err != nil {
			return fmt.Errorf("nats set result of task %s: %w", res.TaskID, err)
		}
		f, err := r.js.PublishMsgAsync(&nats.Msg{Subject: "$KV." + r.opts.bucket + "." + res.TaskID, Data: body})
		if err != nil {
			return r.wrap("set result", err)
		}
		futures = append(futures, f)
	}
	timer := time.NewTimer(r.conn.requestTimeout)
	defer timer.Stop()
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return r.wrap("set result", err)
		case <-ctx.Done():
			return r.wrap("set result", ctx.Err())
		case <-timer.C:
			return r.wrap("set result", nats.ErrTimeout)
		}
	}
	return nil
}

func (r *resultBackend) get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("nats get: %w: %w", sdk.ErrNotFound, err)
	}
	kv, err := r.bucket(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.conn.requestTimeout)
	defer cancel()
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, sdk.ErrNotFound
	}
	if err != nil {
		return nil, r.wrap("get "+key, err)
	}
	return r.decode(key, e.Value())
}

// GetResult returns the result of taskID; with keep_results = false the
// read deletes it.
func (r *resultBackend) GetResult(ctx context.Context, taskID string) ([]byte, error) {
	v, err := r.get(ctx, taskID)
	if err != nil {
		return nil, err
	}
	r.consumed(ctx, taskID)
	return v, nil
}

func (r *resultBackend) consumed(ctx context.Context, taskID string) {
	if r.opts.keepResults {
		return
	}
	kv, err := r.bucket(ctx)
	if err == nil {
		err = kv.Purge(ctx, taskID)
	}
	if err != nil {
		r.log.Warn("could not delete a result read with keep_results = false", "task_id", taskID, "error", err)
	}
}

// IsReady reports whether a result is stored.
func (r *resultBackend) IsReady(ctx context.Context, taskID string) (bool, error) {
	_, err := r.get(ctx, taskID)
	if errors.Is(err, sdk.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// SetProgress stores a progress report.
func (r *resultBackend) SetProgress(ctx context.Context, taskID string, progress []byte) error {
	if err := checkKey(taskID); err != nil {
		return fmt.Errorf("nats set progress: %w", err)
	}
	kv, err := r.bucket(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.conn.requestTimeout)
	defer cancel()
	stored, err := r.encode(progress)
	if err != nil {
		return fmt.Errorf("nats set progress of task %s: %w", taskID, err)
	}
	if _, err := kv.Put(ctx, taskID+progressSuffix, stored); err != nil {
		return r.wrap("set progress", err)
	}
	return nil
}

// GetProgress returns the last progress report.
func (r *resultBackend) GetProgress(ctx context.Context, taskID string) ([]byte, error) {
	return r.get(ctx, taskID+progressSuffix)
}

// WaitResult returns the result of taskID as soon as it is stored.
func (r *resultBackend) WaitResult(ctx context.Context, taskID string) ([]byte, error) {
	if err := checkKey(taskID); err != nil {
		return nil, fmt.Errorf("nats wait: %w", err)
	}
	ch := make(chan []byte, 1)
	r.watchMu.Lock()
	if r.waiters[taskID] == nil {
		r.waiters[taskID] = map[chan []byte]struct{}{}
	}
	r.waiters[taskID][ch] = struct{}{}
	if !r.watching && r.ctx.Err() == nil {
		r.watching = true
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.watch()
		}()
	}
	r.watchMu.Unlock()
	defer func() {
		r.watchMu.Lock()
		delete(r.waiters[taskID], ch)
		if len(r.waiters[taskID]) == 0 {
			delete(r.waiters, taskID)
		}
		r.watchMu.Unlock()
	}()
	poll := time.NewTicker(r.opts.pollFallback)
	defer poll.Stop()
	for {
		v, err := r.get(ctx, taskID)
		if err == nil {
			r.consumed(ctx, taskID)
			return v, nil
		}
		if errors.Is(err, wire.ErrMalformed) {
			return nil, err
		}
		if !errors.Is(err, sdk.ErrNotFound) && ctx.Err() == nil {
			r.log.Debug("reading a result while waiting failed; retrying", "task_id", taskID, "error", err)
		}
		select {
		case v := <-ch:
			if v, err = r.decode(taskID, v); err != nil {
				return nil, err
			}
			r.consumed(ctx, taskID)
			return v, nil
		case <-poll.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-r.ctx.Done():
			return nil, sdk.ErrClosed
		}
	}
}

// watch hands every value stored in the bucket to its key's waiters, until
// the backend closes; a watch that ends (the connection went away) is
// started again.
func (r *resultBackend) watch() {
	bo := backoff.New(20*time.Millisecond, 2*time.Second)
	for r.ctx.Err() == nil {
		kv, err := r.bucket(r.ctx)
		var w jetstream.KeyWatcher
		if err == nil {
			w, err = kv.WatchAll(r.ctx, jetstream.UpdatesOnly(), jetstream.IgnoreDeletes())
		}
		if err != nil {
			if r.ctx.Err() == nil {
				r.log.Warn("watching the result bucket failed; waiters poll until it works", "error", err)
			}
			bo.Wait(r.ctx)
			continue
		}
		bo.Reset()
		r.forward(w.Updates())
		_ = w.Stop()
	}
}

// forward hands the values of updates to their keys' waiters until the
// channel closes (the connection went away) or the backend closes. The
// watcher takes its context only to start: it ends with the connection,
// which Close shuts only after this returns.
func (r *resultBackend) forward(updates <-chan jetstream.KeyValueEntry) {
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case e, ok = <-updates:
			if !ok {
				return
			}
		case <-r.ctx.Done():
			return
		}
		if e == nil {
			continue
		}
		r.watchMu.Lock()
		for ch := range r.waiters[e.Key()] {
			select {
			case ch <- e.Value():
			default:
			}
		}
		r.watchMu.Unlock()
	}
}

// Close stops the watch and closes the connection.
func (r *resultBackend) Close(context.Context) error {
	r.stop()
	r.wg.Wait()
	select {
	case <-r.js.PublishAsyncComplete():
	case <-time.After(r.conn.requestTimeout):
	}
	r.nc.Close()
	return nil
}

// Interface guards
var (
	_ sdk.ResultBackend = (*resultBackend)(nil)
	_ sdk.ResultWaiter  = (*resultBackend)(nil)
)
