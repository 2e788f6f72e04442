// Package api is dyplsq's HTTP API: business systems in any language
// enqueue binding updates and follow them over HTTP, with the guarantees of
// package tasks.
//
// The worker serves it on its own address (API_ADDR, off by default):
//
//	POST /v1/updates             one update or a JSON array of up to 1,000
//	GET  /v1/updates/{taskId}    a job's state and outcome, numbers masked
//	GET  /v1/batches/{batchId}   a batch's counters and state (CLI batches too)
//	GET  /v1/openapi.json        the OpenAPI 3 document of the routes
//
// Every route but the document asks for a bearer token of API_TOKENS
// ("name:token,..."; the name goes to logs and metrics, never the token),
// compared in constant time. Each token has its own request rate limit
// (429 with Retry-After). Errors have one shape everywhere:
//
//	{"error":{"code":"validation_failed","message":"...","details":[{"index":0,"field":"PhoneNoA","reason":"..."}]}}
//
// Each POST is a batch of package batch: its items are the batch's rows,
// line = index + 1, so workers report each item's outcome in the batch
// record and GET /v1/batches follows it as the enqueue CLI does. With an
// Idempotency-Key header the batch id (and so every item's task id) is
// derived from the token's name and the key: the same request sent again
// within the batch window queues nothing twice, and a different request
// under the same key is refused with 409.
package api
