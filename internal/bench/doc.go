// Package bench measures dyplsq against bare asynq on a throwaway Redis; the
// bench command (cmd/bench, `make bench`) runs it.
//
// [Run] starts its own redis-server on a free loopback port (no persistence,
// temporary directory), runs each selected scenario -reps times, and prints a
// markdown table of medians with min/max and, where a scenario names a
// baseline, the ratio of its median to the baseline's. It never touches the
// Redis of REDIS_URL or 127.0.0.1:6379 unless -redis-url is given.
//
// Scenarios are registered in scenario.go; see the [Scenario] type.
package bench
