package testsrv

import (
	"io"
	"net/http"
)

// HTTPBody is the body of every HTTP answer, so a client can count the
// responses a connection carried.
const HTTPBody = "hello from the server namespace"

// HTTPHandler answers every request with 200 and HTTPBody.
func HTTPHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, HTTPBody)
	})
}
