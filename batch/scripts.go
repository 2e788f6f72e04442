package batch

import (
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// luaPrelude defines, for every script, the outcome names by their 4-bit
// code, the codes the scripts treat specially, the helpers that read and
// write a line's code in the rows string, and writeback (luaWriteBack).
//
// The rows string holds 4 bits per line, line L in byte L/2 (high nibble
// for an even L, low nibble for an odd one): the layout of BITFIELD u4 at
// offset #L. The scripts read and write it with GETRANGE and SETRANGE and
// plain arithmetic, not BITFIELD, so that they run on every Redis 7 server
// and Cluster and on miniredis (the in-memory Redis of make demo), which has
// no BITFIELD; Lua's bit library is not needed either. Records written by
// earlier versions, which used BITFIELD, read the same.
var luaPrelude = func() string {
	names := make([]string, 0, len(outcomes)-1)
	for _, o := range outcomes[1:] {
		names = append(names, fmt.Sprintf("%q", o))
	}
	pending, _ := outcomeCode(OutcomePending)
	cancelled, _ := outcomeCode(OutcomeCancelled)
	invalid, _ := outcomeCode(OutcomeInvalid)
	retrying, _ := outcomeCode(OutcomeRetrying)
	halted, _ := outcomeCode(OutcomeHalted)
	return fmt.Sprintf("local names = {%s}\nlocal PENDING, CANCELLED, INVALID, RETRYING, HALTED, BUCKET = %d, %d, %d, %d, %d, %d\n",
		strings.Join(names, ", "), pending, cancelled, invalid, retrying, halted, BucketLines) + luaNibbles + luaNow + luaWriteBack
}()

// luaNow reads Redis's clock, in Unix milliseconds as a decimal string:
// times the scripts store and expiries they set never depend on the clock
// of the machine running the CLI or the worker. Redis replicates a script's
// effects, so the non-deterministic TIME is safe before writes.
const luaNow = `
local function nowms()
	if redis.replicate_commands then pcall(redis.replicate_commands) end
	local t = redis.call('TIME')
	return string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
end
`

// luaNibbles gets and sets the 4-bit code of line l in byte v of the rows
// string (v is 0 to 255; byte l/2 holds lines l-l%2 and l-l%2+1).
const luaNibbles = `
local function nibble(v, l)
	if l % 2 == 0 then return math.floor(v / 16) end
	return v % 16
end
local function setnibble(v, l, c)
	if l % 2 == 0 then return c * 16 + v % 16 end
	return v - v % 16 + c
end
`

// luaWriteBack writes back what a script changed in a batch's rows, counters
// and detail buckets, as recordScript and cancelOpenScript do after
// updating them in Lua tables:
//   - bytes[dlo..dhi] (bytes[1] is byte first of the rows string) to the
//     rows string, KEYS[2], with one SETRANGE, when dlo is set (something
//     changed);
//   - each increment of incr (field to amount) to the batch hash, KEYS[1],
//     with HINCRBY;
//   - the expiry exp (Unix ms), with PEXPIREAT, to each detail bucket KEYS[bi]
//     for bi a key of touched.
const luaWriteBack = `
local function writeback(bytes, first, dlo, dhi, incr, touched, exp)
	if dlo then
		local out = {}
		for k = dlo, dhi do out[#out + 1] = string.char(bytes[k]) end
		redis.call('SETRANGE', KEYS[2], first + dlo - 1, table.concat(out))
	end
	for k, v in pairs(incr) do redis.call('HINCRBY', KEYS[1], k, v) end
	for bi in pairs(touched) do redis.call('PEXPIREAT', KEYS[bi], exp) end
end
`

func script(body string) *redis.Script { return redis.NewScript(luaPrelude + body) }

// beginScript creates a batch unless it exists, stamped created now by
// Redis's clock and expiring ttl later. It returns {1, created_at} when it
// created the batch, {0, 0} when it existed.
// KEYS: batch hash, rows, versions. ARGV: ttl (ms), then field/value pairs.
var beginScript = script(`
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 0} end
redis.call('DEL', KEYS[2], KEYS[3])
local now = nowms()
local exp = string.format('%.0f', tonumber(now) + tonumber(ARGV[1]))
local args = {}
for i = 2, #ARGV do args[#args + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], 'created_at', now, 'expires_at', exp, unpack(args))
redis.call('PEXPIREAT', KEYS[1], exp)
return {1, tonumber(now)}
`)

// completeScript moves a queueing batch to queued (at Redis's time) and
// returns its state.
// KEYS: batch hash.
var completeScript = script(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return false end
if st == 'queueing' then
	redis.call('HSET', KEYS[1], 'state', 'queued', 'queued_at', nowms())
	return 'queued'
end
return st
`)

// cancelScript marks a batch cancelled (at Redis's time) and returns its
// state before.
// KEYS: batch hash.
var cancelScript = script(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return false end
if st ~= 'cancelled' then
	redis.call('HSET', KEYS[1], 'state', 'cancelled', 'cancelled_at', nowms())
end
return st
`)

// versionsScript records the first version of a block unless one is
// recorded, and returns the recorded one.
// KEYS: batch hash, versions. ARGV: block, first version.
var versionsScript = script(`
local exp = redis.call('HGET', KEYS[1], 'expires_at')
if not exp then return false end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 1 then
	redis.call('PEXPIREAT', KEYS[2], exp)
	return ARGV[2]
end
return redis.call('HGET', KEYS[2], ARGV[1])
`)

// recordScript records rows that have no outcome yet.
// KEYS: batch hash, rows, then the detail buckets from ARGV[1] on.
// ARGV: first bucket, then per row: line, outcome code, task id, detail, code.
// Returns {recorded, cancelled}; {-1, 0} when the batch does not exist.
//
// It reads the bytes of the rows string that hold the entries' lines with one
// GETRANGE (Record's entries lie within 16 buckets: at most 1024 bytes), and
// writes back the bytes it changed with one SETRANGE. A line given twice is
// recorded once.
var recordScript = script(`
local exp = redis.call('HGET', KEYS[1], 'expires_at')
if not exp then return {-1, 0} end
local cancelled = redis.call('HGET', KEYS[1], 'state') == 'cancelled'
local now = redis.call('TIME')
redis.call('HSET', KEYS[1], 'active_at', now[1] * 1000 + math.floor(now[2] / 1000))
local first = tonumber(ARGV[1])
local lo, hi
for i = 2, #ARGV, 5 do
	local b = math.floor(tonumber(ARGV[i]) / 2)
	if not lo or b < lo then lo = b end
	if not hi or b > hi then hi = b end
end
local cur = redis.call('GETRANGE', KEYS[2], lo, hi)
local bytes = {}
for k = 1, hi - lo + 1 do bytes[k] = string.byte(cur, k) or 0 end
local dlo, dhi
local incr, touched = {}, {}
local n = 0
local function add(k, v) incr[k] = (incr[k] or 0) + v end
for i = 2, #ARGV, 5 do
	local line, st = ARGV[i], tonumber(ARGV[i + 1])
	local tid, detail, code = ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
	local l = tonumber(line)
	local bi = 3 + math.floor(l / BUCKET) - first
	if tid ~= '' then
		redis.call('HSET', KEYS[bi], 't' .. line, tid)
		touched[bi] = true
	end
	local k = math.floor(l / 2) - lo + 1
	if nibble(bytes[k], l) == 0 then
		if cancelled and st == PENDING then st = CANCELLED end
		bytes[k] = setnibble(bytes[k], l, st)
		if not dlo or k < dlo then dlo = k end
		if not dhi or k > dhi then dhi = k end
		add('n:' .. names[st], 1)
		if st ~= INVALID then add('n:queued', 1) end
		if detail ~= '' then
			redis.call('HSET', KEYS[bi], line, detail)
			touched[bi] = true
		end
		if code ~= '' then add('c:' .. names[st] .. ':' .. code, 1) end
		n = n + 1
	end
end
writeback(bytes, lo, dlo, dhi, incr, touched, exp)
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIREAT', KEYS[2], exp) end
return {n, cancelled and 1 or 0}
`)

// markScript replaces the state of one line and moves the counters.
// KEYS: batch hash, rows, the line's detail bucket.
// ARGV: line, outcome code, detail ("" for none), code ("" for none),
// "1" to change only a line that is open (pending, retrying or halted).
// Returns the previous outcome code, -1 when the batch does not exist, or
// -2 when the line was not open and "1" was given.
var markScript = script(`
local exp = redis.call('HGET', KEYS[1], 'expires_at')
if not exp then return -1 end
local line, st = ARGV[1], tonumber(ARGV[2])
local l = tonumber(line)
local at = math.floor(l / 2)
local v = string.byte(redis.call('GETRANGE', KEYS[2], at, at)) or 0
local old = nibble(v, l)
if ARGV[5] == '1' and old ~= PENDING and old ~= RETRYING and old ~= HALTED then return -2 end
local oldd = redis.call('HGET', KEYS[3], line)
if old == 0 or old == INVALID then
	redis.call('HINCRBY', KEYS[1], 'n:queued', 1)
end
if old ~= 0 then
	redis.call('HINCRBY', KEYS[1], 'n:' .. names[old], -1)
	if oldd then
		local c = string.match(oldd, '^([^\31]*)')
		if c and c ~= '' then redis.call('HINCRBY', KEYS[1], 'c:' .. names[old] .. ':' .. c, -1) end
	end
end
redis.call('SETRANGE', KEYS[2], at, string.char(setnibble(v, l, st)))
redis.call('PEXPIREAT', KEYS[2], exp)
redis.call('HINCRBY', KEYS[1], 'n:' .. names[st], 1)
if ARGV[4] ~= '' then redis.call('HINCRBY', KEYS[1], 'c:' .. names[st] .. ':' .. ARGV[4], 1) end
if ARGV[3] ~= '' then
	redis.call('HSET', KEYS[3], line, ARGV[3])
	redis.call('PEXPIREAT', KEYS[3], exp)
elseif oldd then
	redis.call('HDEL', KEYS[3], line)
end
return old
`)

// cancelOpenScript ends cancelled the pending lines of a range (queued, no
// worker has reported on them) and moves the counters, as markScript does
// line by line.
// KEYS: batch hash, rows, the detail buckets from ARGV[1] on.
// ARGV: first bucket, first line, last line, detail, then lines to keep.
// Returns the lines it ended, or -1 when the batch does not exist.
var cancelOpenScript = script(`
local exp = redis.call('HGET', KEYS[1], 'expires_at')
if not exp then return -1 end
local fb, lo, hi = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local keep = {}
for i = 5, #ARGV do keep[tonumber(ARGV[i])] = true end
local blo, bhi = math.floor(lo / 2), math.floor(hi / 2)
local cur = redis.call('GETRANGE', KEYS[2], blo, bhi)
if #cur == 0 then return 0 end
local bytes = {}
for k = 1, bhi - blo + 1 do bytes[k] = string.byte(cur, k) or 0 end
local incr, touched = {}, {}
local n, dlo, dhi = 0, nil, nil
local function add(k, v) incr[k] = (incr[k] or 0) + v end
for l = lo, hi do
	local k = math.floor(l / 2) - blo + 1
	local old = nibble(bytes[k], l)
	if old == PENDING and not keep[l] then
		local bi = 3 + math.floor(l / BUCKET) - fb
		local line = tostring(l)
		local oldd = redis.call('HGET', KEYS[bi], line)
		if oldd then
			local c = string.match(oldd, '^([^\31]*)')
			if c and c ~= '' then add('c:' .. names[old] .. ':' .. c, -1) end
		end
		redis.call('HSET', KEYS[bi], line, ARGV[4])
		touched[bi] = true
		add('n:' .. names[old], -1)
		add('n:' .. names[CANCELLED], 1)
		bytes[k] = setnibble(bytes[k], l, CANCELLED)
		if not dlo then dlo = k end
		dhi = k
		n = n + 1
	end
end
writeback(bytes, blo, dlo, dhi, incr, touched, exp)
return n
`)
