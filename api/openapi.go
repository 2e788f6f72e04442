package api

import (
	_ "embed"
	"net/http"
	"strconv"
)

// Document is the OpenAPI 3 document of the API, served at
// /v1/openapi.json.
//
//go:embed openapi.json
var Document []byte

// serveDocument is GET /v1/openapi.json; it needs no token.
func serveDocument(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(Document)))
	_, _ = w.Write(Document)
}
