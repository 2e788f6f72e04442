// Package enqueuecli is the enqueue command: it queues Dyplsapi binding
// updates from CSV and JSON Lines files as a batch that is safe to re-run,
// follows the batch to the outcome of every row, and works the dead-letter
// queue and the queues. Run is the whole command; cmd/enqueue calls it from
// main. Run `enqueue --help` for its usage.
package enqueuecli
