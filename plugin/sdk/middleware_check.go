package sdk

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/agext/levenshtein"
)

// ErrInvalidMiddleware is wrapped by CheckMiddleware's errors.
var ErrInvalidMiddleware = errors.New("invalid middleware")

// hookMethod ties a hook to the method and interface that implement it.
type hookMethod struct {
	hook   Hook
	method string
	iface  reflect.Type
}

var hookMethods = [...]hookMethod{
	{HookPreSend, "PreSend", reflect.TypeFor[PreSender]()},
	{HookPostSend, "PostSend", reflect.TypeFor[PostSender]()},
	{HookPreExecute, "PreExecute", reflect.TypeFor[PreExecuter]()},
	{HookOnError, "OnError", reflect.TypeFor[ErrorHandler]()},
	{HookPostExecute, "PostExecute", reflect.TypeFor[PostExecuter]()},
	{HookPostSave, "PostSave", reflect.TypeFor[PostSaver]()},
}

// CheckMiddleware reports why mw cannot work as a middleware, or nil. The
// errors wrap ErrInvalidMiddleware and name mw's type. A middleware must
// implement at least one hook (a value with a Hooks method must list at
// least one, and implement those it lists). Because a hook that is not
// implemented is silently not called, a method that looks like a hook is an
// error too: a name close to a hook's (PreExcute for PreExecute) that the
// value does not implement under the right name, a hook's name with another
// signature, or hook methods declared on the pointer type of a value passed
// by value.
func CheckMiddleware(mw Middleware) error {
	if mw == nil {
		return fmt.Errorf("%w: nil middleware", ErrInvalidMiddleware)
	}
	t := reflect.TypeOf(mw)
	var problems []string
	for i := range t.NumMethod() {
		m := t.Method(i)
		for _, h := range hookMethods {
			if t.Implements(h.iface) {
				continue
			}
			want := hookSignature(h)
			switch {
			case m.Name == h.method:
				problems = append(problems, fmt.Sprintf("method %s%s does not have the signature of hook %s (%s): %s%s",
					m.Name, methodSignature(m), h.method, h.hook, h.method, want))
			case looksLike(m.Name, h.method):
				problems = append(problems, fmt.Sprintf("method %s looks like hook %s (%s), which is %s%s; rename it",
					m.Name, h.method, h.hook, h.method, want))
			}
		}
	}
	if t.Kind() != reflect.Pointer {
		pt := reflect.PointerTo(t)
		for _, h := range hookMethods {
			if !t.Implements(h.iface) && pt.Implements(h.iface) {
				problems = append(problems, fmt.Sprintf("hook %s has a pointer receiver, so a %s value does not have it; register a *%s", h.hook, t, t))
			}
		}
	}
	if l, ok := mw.(HookLister); ok {
		for _, hk := range l.Hooks() {
			h, known := hookByName(hk)
			switch {
			case !known:
				problems = append(problems, fmt.Sprintf("Hooks lists %q, which is not a hook (hooks: %s)", hk, hookNames()))
			case !t.Implements(h.iface):
				problems = append(problems, fmt.Sprintf("Hooks lists %s, but there is no method %s%s", hk, h.method, hookSignature(h)))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %T: %s", ErrInvalidMiddleware, mw, strings.Join(problems, "; "))
	}
	if len(HooksOf(mw)) == 0 {
		if _, ok := mw.(HookLister); ok {
			return fmt.Errorf("%w: %T lists no hooks (hooks: %s)", ErrInvalidMiddleware, mw, hookNames())
		}
		return fmt.Errorf("%w: %T implements no hook; a middleware has at least one of the methods %s",
			ErrInvalidMiddleware, mw, methodNames())
	}
	return nil
}

func hookByName(name Hook) (hookMethod, bool) {
	for _, h := range hookMethods {
		if h.hook == name {
			return h, true
		}
	}
	return hookMethod{}, false
}

func hookNames() string {
	names := make([]string, len(hookMethods))
	for i, h := range hookMethods {
		names[i] = string(h.hook)
	}
	return strings.Join(names, ", ")
}

func methodNames() string {
	names := make([]string, len(hookMethods))
	for i, h := range hookMethods {
		names[i] = h.method
	}
	return strings.Join(names, ", ")
}

// hookSignature is the hook's method type, without receiver.
func hookSignature(h hookMethod) string {
	m, _ := h.iface.MethodByName(h.method)
	return strings.TrimPrefix(m.Type.String(), "func")
}

// methodSignature is a concrete method's type, without its receiver.
func methodSignature(m reflect.Method) string {
	ft := m.Type
	in := make([]string, 0, ft.NumIn())
	for i := 1; i < ft.NumIn(); i++ { // 0 is the receiver
		in = append(in, ft.In(i).String())
	}
	out := make([]string, 0, ft.NumOut())
	for i := range ft.NumOut() {
		out = append(out, ft.Out(i).String())
	}
	sig := "(" + strings.Join(in, ", ") + ")"
	switch len(out) {
	case 0:
	case 1:
		sig += " " + out[0]
	default:
		sig += " (" + strings.Join(out, ", ") + ")"
	}
	return sig
}

// looksLike reports whether a method name is a near miss of a hook's: the
// same letters in another case, or at most two edits away. The hooks' names
// are at least three edits apart from each other, so a hook never looks
// like another one.
func looksLike(name, hook string) bool {
	if name == hook {
		return false
	}
	a, b := strings.ToLower(name), strings.ToLower(hook)
	return a == b || levenshtein.Distance(a, b, nil) <= 2
}
