package monitor

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
)

// basicAuth asks for the configured user and password (see [credentials]).
func basicAuth(user, password string, next http.Handler) http.Handler {
	ok := credentials(user, password)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ok(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="dyplsq"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// credentials returns a check that a request carries the configured user
// and password. Both are compared as SHA-256 digests in constant time, so
// neither their content nor their length leaks through timing.
func credentials(user, password string) func(*http.Request) bool {
	wantUser := sha256.Sum256([]byte(user))
	wantPass := sha256.Sum256([]byte(password))
	return func(r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		gotUser := sha256.Sum256([]byte(u))
		gotPass := sha256.Sum256([]byte(p))
		userOK := subtle.ConstantTimeCompare(gotUser[:], wantUser[:])
		passOK := subtle.ConstantTimeCompare(gotPass[:], wantPass[:])
		return ok && userOK&passOK == 1
	}
}
