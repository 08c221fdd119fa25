package core

import (
	"context"
	"errors"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// chain runs middleware hooks in taskiq's order: pre hooks (pre_send,
// pre_execute) in configured order, post hooks (post_send, on_error,
// post_execute, post_save) in reverse. Each hook list holds only the
// middlewares that declare that hook, so the host never calls the others
// (for plugins: never pays an RPC for them).
type chain struct {
	all        []sdk.Middleware
	preSends   []sdk.PreSender
	postSends  []sdk.PostSender
	preExecs   []sdk.PreExecuter
	onErrors   []sdk.ErrorHandler
	postExecs  []sdk.PostExecuter
	postSavers []sdk.PostSaver
}

func (c *chain) add(mws ...sdk.Middleware) { c.all = append(c.all, mws...) }

func (c *chain) build() {
	for _, mw := range c.all {
		for _, h := range sdk.HooksOf(mw) {
			switch h {
			case sdk.HookPreSend:
				c.preSends = append(c.preSends, mw.(sdk.PreSender))
			case sdk.HookPostSend:
				c.postSends = append(c.postSends, mw.(sdk.PostSender))
			case sdk.HookPreExecute:
				c.preExecs = append(c.preExecs, mw.(sdk.PreExecuter))
			case sdk.HookOnError:
				c.onErrors = append(c.onErrors, mw.(sdk.ErrorHandler))
			case sdk.HookPostExecute:
				c.postExecs = append(c.postExecs, mw.(sdk.PostExecuter))
			case sdk.HookPostSave:
				c.postSavers = append(c.postSavers, mw.(sdk.PostSaver))
			}
		}
	}
}

func (c *chain) preSend(ctx context.Context, m *wire.Message) error {
	for _, mw := range c.preSends {
		if err := mw.PreSend(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

func (c *chain) postSend(ctx context.Context, m *wire.Message) error {
	var errs []error
	for i := len(c.postSends) - 1; i >= 0; i-- {
		errs = append(errs, c.postSends[i].PostSend(ctx, m))
	}
	return errors.Join(errs...)
}

func (c *chain) preExecute(ctx context.Context, m *wire.Message) error {
	for _, mw := range c.preExecs {
		if err := mw.PreExecute(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// onError runs every error handler and reports whether the result must not
// be saved (ErrNoResult) and a dead-letter reason, if any asked for one.
// Other hook errors are returned joined.
func (c *chain) onError(ctx context.Context, m *wire.Message, r *wire.Result, taskErr error) (noResult bool, deadLetter string, err error) {
	var errs []error
	for i := len(c.onErrors) - 1; i >= 0; i-- {
		herr := c.onErrors[i].OnError(ctx, m, r, taskErr)
		switch {
		case herr == nil:
		case errors.Is(herr, sdk.ErrNoResult):
			noResult = true
		case errors.Is(herr, sdk.ErrDeadLetter):
			deadLetter, _ = sdk.DeadLetterReason(herr)
		default:
			errs = append(errs, herr)
		}
	}
	return noResult, deadLetter, errors.Join(errs...)
}

func (c *chain) postExecute(ctx context.Context, m *wire.Message, r *wire.Result) error {
	var errs []error
	for i := len(c.postExecs) - 1; i >= 0; i-- {
		errs = append(errs, c.postExecs[i].PostExecute(ctx, m, r))
	}
	return errors.Join(errs...)
}

func (c *chain) postSave(ctx context.Context, m *wire.Message, r *wire.Result) error {
	var errs []error
	for i := len(c.postSavers) - 1; i >= 0; i-- {
		errs = append(errs, c.postSavers[i].PostSave(ctx, m, r))
	}
	return errors.Join(errs...)
}
