// Package dashboard is taskiq-go's web dashboard: an http.Handler that shows
// the queues, the messages of a queue by state with server-side search, one
// task (message, labels, attempts, result or error with its cause chain,
// progress), the dead letters with re-kick or delete of a selection or of
// a whole filtered set (and a move of either to another queue), the
// workers, and the schedules with their next fires (pause, resume,
// trigger). It renders html/template pages on
// the server; its stylesheet is embedded with go:embed, and nothing is
// built at install time.
//
// `taskiq dashboard --config taskiq.hcl` serves it on 127.0.0.1:8088; an
// application mounts it under a prefix of its own server with New:
//
//	h, err := dashboard.New(app, dashboard.Options{Prefix: "/taskiq", Token: os.Getenv("TASKIQ_DASHBOARD_TOKEN")})
//	mux.Handle("/taskiq/", h)
//
// Every action (re-kick, delete, move, pause, cancel, a schedule's pause,
// resume or trigger) is a POST that carries a
// CSRF token (a double-submit cookie, SameSite=Strict, checked in constant
// time) and is refused in read-only mode. Options.Token or
// Options.BasicUser protect the whole dashboard. Configuration is never
// rendered: the pages show what the broker's inspector returns and the
// stored results, nothing of taskiq.hcl.
package dashboard

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/taskiq-go/taskiq/core"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Options configures the dashboard.
type Options struct {
	// Prefix is the path the handler is mounted under ("/taskiq"), without
	// a trailing slash; "" means the root. Links and redirects use it; the
	// handler strips it from request paths.
	Prefix string
	// Broker is the broker block to inspect; "" is the default broker.
	Broker string
	// ReadOnly hides every action and refuses every POST.
	ReadOnly bool
	// Token, when set, is required: as "Authorization: Bearer <token>", or
	// as ?token=<token> on a GET, which also sets an HttpOnly cookie so the
	// pages that follow need not carry it.
	Token string
	// BasicUser and BasicPassword, when BasicUser is set, require HTTP
	// basic authentication.
	BasicUser, BasicPassword string
	// Now is the clock of ages and the sparkline; nil means time.Now.
	Now func() time.Time
}

// Handler is the dashboard.
type Handler struct {
	app  *core.App
	opts Options
	tpl  *template.Template
	mux  *http.ServeMux

	histMu  sync.Mutex
	history map[string][]sample // queue -> refreshes, oldest first
}

// historyLen is how many refreshes a queue's sparkline shows.
const historyLen = 30

// New returns the dashboard of app's broker. The App must stay open while
// the handler serves.
func New(app *core.App, opts Options) (*Handler, error) {
	if app == nil {
		return nil, errors.New("dashboard: nil App")
	}
	opts.Prefix = strings.TrimRight(opts.Prefix, "/")
	if opts.Prefix != "" && !strings.HasPrefix(opts.Prefix, "/") {
		return nil, fmt.Errorf("dashboard: prefix %q must start with /", opts.Prefix)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if _, err := app.Inspector(opts.Broker); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	h := &Handler{app: app, opts: opts, history: map[string][]sample{}}
	tpl, err := template.New("").Funcs(h.funcs()).ParseFS(assets, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard: templates: %w", err)
	}
	h.tpl = tpl
	static, _ := fs.Sub(assets, "static")
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, h.link("/queues"), http.StatusSeeOther)
	})
	mux.HandleFunc("GET /queues", h.queues)
	mux.HandleFunc("GET /tasks", h.tasks)
	mux.HandleFunc("GET /dead", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, h.link("/tasks?state=dead"), http.StatusSeeOther)
	})
	mux.HandleFunc("GET /task/{id}", h.task)
	mux.HandleFunc("GET /workers", h.workers)
	mux.HandleFunc("GET /schedules", h.schedules)
	mux.HandleFunc("POST /schedule", h.scheduleAction)
	mux.HandleFunc("POST /actions", h.action)
	mux.HandleFunc("POST /pause", h.pause)
	mux.HandleFunc("POST /cancel", h.cancel)
	h.mux = mux
	return h, nil
}

// link is a path of the dashboard as a browser must request it.
func (h *Handler) link(p string) string { return h.opts.Prefix + p }

// ServeHTTP authenticates, strips the prefix and serves.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'")
	if !h.authorized(w, r) {
		return
	}
	p := r.URL.Path
	if h.opts.Prefix != "" {
		rest, ok := strings.CutPrefix(p, h.opts.Prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		if rest == "" {
			rest = "/"
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = rest
		r2.URL.RawPath = ""
		r = r2
	}
	h.mux.ServeHTTP(w, r)
}

const (
	tokenCookie = "taskiq_dashboard_token"
	csrfCookie  = "taskiq_dashboard_csrf"
	csrfField   = "csrf"
)

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// authorized checks the token or basic credentials, and answers the
// request itself when they are missing.
func (h *Handler) authorized(w http.ResponseWriter, r *http.Request) bool {
	if h.opts.BasicUser != "" {
		u, p, ok := r.BasicAuth()
		if !ok || !equal(u, h.opts.BasicUser) || !equal(p, h.opts.BasicPassword) {
			w.Header().Set("WWW-Authenticate", `Basic realm="taskiq dashboard", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return false
		}
	}
	if h.opts.Token == "" {
		return true
	}
	if auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && equal(auth, h.opts.Token) {
		return true
	}
	if c, err := r.Cookie(tokenCookie); err == nil && equal(c.Value, h.opts.Token) {
		return true
	}
	if t := r.URL.Query().Get("token"); t != "" && equal(t, h.opts.Token) && r.Method == http.MethodGet {
		// The cookie lets the pages that follow (links, forms) in without
		// the token in their URLs.
		http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: h.opts.Token, Path: h.link("/"), HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
		return true
	}
	http.Error(w, "a token is required: open the dashboard with ?token=<token> or send Authorization: Bearer <token>", http.StatusUnauthorized)
	return false
}

// csrfToken returns the browser's CSRF token, setting the cookie on first
// use.
func (h *Handler) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 32 {
		return c.Value
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	tok := hex.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: tok, Path: h.link("/"), HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	return tok
}

// checkPost refuses a POST in read-only mode or without a valid CSRF
// token; it answers the request itself then.
func (h *Handler) checkPost(w http.ResponseWriter, r *http.Request) bool {
	if h.opts.ReadOnly {
		http.Error(w, "the dashboard is read-only", http.StatusForbidden)
		return false
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return false
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil || c.Value == "" || !equal(c.Value, r.PostForm.Get(csrfField)) {
		http.Error(w, "missing or wrong CSRF token: reload the page and try again", http.StatusForbidden)
		return false
	}
	return true
}
