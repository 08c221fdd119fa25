package sdk

import (
	"context"

	pluginv1 "github.com/taskiq-go/taskiq/plugin/sdk/proto/v1"
)

// remoteResults is a ResultBackend served by a plugin process. It also
// implements ResultWaiter; WaitResult returns ErrUnsupported when the
// plugin's backend cannot wait.
type remoteResults struct {
	c   *Client
	rpc pluginv1.ResultBackendClient
}

// SetResults sends the batch in one request, or in several when the bodies
// together would exceed the message size limit.
func (r *remoteResults) SetResults(ctx context.Context, results []StoredResult) error {
	out := make([]*pluginv1.StoredResult, len(results))
	for i, x := range results {
		if len(x.Body) > r.c.maxSize {
			return tooLarge("the result of task "+x.TaskID, len(x.Body), r.c.maxSize)
		}
		out[i] = &pluginv1.StoredResult{TaskId: x.TaskID, Body: x.Body}
	}
	for _, chunk := range chunkBySize(out, r.c.maxSize, func(x *pluginv1.StoredResult) int { return len(x.Body) + len(x.TaskId) }) {
		if _, err := r.rpc.SetResults(ctx, &pluginv1.SetResultsRequest{Results: chunk}); err != nil {
			return r.c.mapErr(ctx, "set results", err)
		}
	}
	return nil
}

func (r *remoteResults) body(ctx context.Context, op, taskID string, resp *pluginv1.ResultResponse, err error) ([]byte, error) {
	if err != nil {
		return nil, r.c.mapErr(ctx, op, err)
	}
	if !resp.Found {
		return nil, notFound(taskID)
	}
	return resp.Body, nil
}

func (r *remoteResults) GetResult(ctx context.Context, taskID string) ([]byte, error) {
	resp, err := r.rpc.GetResult(ctx, &pluginv1.TaskRef{TaskId: taskID})
	return r.body(ctx, "get result", taskID, resp, err)
}

func (r *remoteResults) IsReady(ctx context.Context, taskID string) (bool, error) {
	resp, err := r.rpc.IsReady(ctx, &pluginv1.TaskRef{TaskId: taskID})
	if err != nil {
		return false, r.c.mapErr(ctx, "is ready", err)
	}
	return resp.Ready, nil
}

// WaitResult waits over the Client's shared WatchResults stream.
func (r *remoteResults) WaitResult(ctx context.Context, taskID string) ([]byte, error) {
	return WaitWatched(ctx, r, taskID)
}

// WatchResult watches over the Client's shared WatchResults stream; a
// plugin built before it existed gets a unary WaitResult per watch.
func (r *remoteResults) WatchResult(taskID string, done func([]byte, error)) func() bool {
	return r.c.watch.watch(taskID, done)
}

func (r *remoteResults) SetProgress(ctx context.Context, taskID string, progress []byte) error {
	if len(progress) > r.c.maxSize {
		return tooLarge("the progress of task "+taskID, len(progress), r.c.maxSize)
	}
	if _, err := r.rpc.SetProgress(ctx, &pluginv1.SetProgressRequest{TaskId: taskID, Body: progress}); err != nil {
		return r.c.mapErr(ctx, "set progress", err)
	}
	return nil
}

func (r *remoteResults) GetProgress(ctx context.Context, taskID string) ([]byte, error) {
	resp, err := r.rpc.GetProgress(ctx, &pluginv1.TaskRef{TaskId: taskID})
	return r.body(ctx, "get progress", taskID, resp, err)
}

// Close asks the plugin to close the backend; the process stays up until
// Client.Close.
func (r *remoteResults) Close(ctx context.Context) error {
	return r.c.shutdownRole(ctx)
}

// Interface guards
var (
	_ ResultBackend = (*remoteResults)(nil)
	_ ResultWaiter  = (*remoteResults)(nil)
	_ ResultWatcher = (*remoteResults)(nil)
)
