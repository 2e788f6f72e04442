package api

// Every Redis key the api package writes itself is named here; batch
// records and dead letters are written through [batch.Store] and
// [deadletter.Store].

// requestKey holds the fingerprint of the request that first used a batch's
// Idempotency-Key: <prefix>:api:{<batch id>}:request, a string holding the
// SHA-256 of the request's queue and normalized updates. Slot: the batch
// id. Lifetime: the batch window.
func (s *Server) requestKey(id string) string { return s.cfg.KeyPrefix + ":api:{" + id + "}:request" }
