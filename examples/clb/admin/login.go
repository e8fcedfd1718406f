package admin

import (
	"crypto/subtle"
	_ "embed"
	"html/template"
	"net"
	"net/http"
	"net/netip"
)

// The login: a session cookie for the status page's buttons. The cookie
// is ambient — a browser sends it with any request to the server — so a
// write carrying it also needs the session's CSRF token in a header,
// which only the page (same origin) can read and set.

// Cookie and header names of a session.
const (
	SessionCookie = "clb_admin_session"
	CSRFHeader    = "X-CSRF-Token"
)

var (
	//go:embed login.html
	loginHTML string
	loginTmpl = template.Must(template.New("login").Parse(loginHTML))
	// loginCSP is pageCSP's, with no script and the form posting here.
	loginCSP = "default-src 'none'; img-src data:; style-src " + cspHash(pageCSS) + "; " +
		"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

// maxFormBytes bounds a login or logout form.
const maxFormBytes = 4 << 10

// routeLogin adds the login's routes to the mux.
func (s *Server) routeLogin() {
	s.mux.HandleFunc("GET /login", s.loginPage)
	s.mux.HandleFunc("POST /login", s.login)
	s.mux.HandleFunc("POST /logout", s.logout)
}

// loginPage serves the login form; it changes nothing.
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	var data struct {
		Style     template.CSS
		Who, Cert string
	}
	data.Style = pageStyle
	if sess := s.session(r); sess != nil {
		data.Who = sess.who
	}
	data.Cert, _ = certWho(r)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", loginCSP)
	loginTmpl.Execute(w, data)
}

// login starts a session for a token in the form, or, with the token
// left empty, for a verified client certificate; then sends the browser
// back to the status page.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	from := remoteAddr(r)
	if s.sess.limited(from, now) {
		s.refuse(w, r, http.StatusTooManyRequests, refusedLimited, "admin: too many failed logins from this address: wait and retry")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	who, ok := "", false
	if token := r.PostFormValue("token"); token != "" {
		if who, ok = s.tokens.match(token); !ok {
			s.sess.failed(from, now)
			s.refuse(w, r, http.StatusUnauthorized, refusedBad, "admin: bad token")
			return
		}
	} else if who, ok = certWho(r); !ok {
		s.refuse(w, r, http.StatusUnauthorized, refusedMissing, "admin: missing token")
		return
	}
	cookie, _ := s.sess.create(who, now)
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: cookie, Path: "/",
		Expires: now.Add(SessionTTL), MaxAge: int(SessionTTL.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	s.audit.Info("admin login", "who", who, "remote", r.RemoteAddr)
	backToPage(w)
}

// logout ends the session; the form carries its CSRF token, so another
// site cannot log an operator out.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	c, err := r.Cookie(SessionCookie)
	if err == nil {
		sess := s.sess.lookup(c.Value, s.now())
		if sess != nil && !validCSRF(sess, r.PostFormValue("csrf")) {
			s.refuse(w, r, http.StatusForbidden, refusedCSRF, "admin: missing or bad CSRF token")
			return
		}
		s.sess.end(c.Value)
		if sess != nil {
			s.audit.Info("admin logout", "who", sess.who, "remote", r.RemoteAddr)
		}
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	backToPage(w)
}

// backToPage sends the browser to the status page. The Location is
// relative, unlike http.Redirect's, so that it stays under the prefix
// a Server may be mounted at.
func backToPage(w http.ResponseWriter) {
	w.Header().Set("Location", "./")
	w.WriteHeader(http.StatusSeeOther)
}

// session returns the live session of r's cookie, or nil.
func (s *Server) session(r *http.Request) *session {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return nil
	}
	return s.sess.lookup(c.Value, s.now())
}

// validCSRF compares token with sess's in constant time.
func validCSRF(sess *session, token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(sess.csrf)) == 1
}

// remoteAddr is r's client address; the zero Addr if it cannot be read.
func remoteAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	a, _ := netip.ParseAddr(host)
	return a
}
