"""The Redis store's Lua scripts: one per write, each on the keys of one trace (or one
compensation key), run atomically on its slot. Key shapes and record formats are in
`keys`; the scripts that walk the keyspace (counts, purges) are in `scan`. Times come
from the server (`TIME`), never from the client.

A trace script receives the trace's keys as KEYS[1..5] in `keys.TRACE_KINDS` order:
state, ev, sup, iv, lease. Steps, times and tokens are compared as decimal strings
(`lt`), never as Lua numbers.
"""

from __future__ import annotations

LT = r"""
-- a < b for integers written in decimal: exact where Lua's numbers (doubles) are not
-- (steps, tokens and times go up to 2^63-1)
local function lt(a, b)
  local na, nb = string.byte(a) == 45, string.byte(b) == 45
  if na ~= nb then return na end
  if #a ~= #b then return (#a < #b) ~= na end
  return a ~= b and ((a < b) ~= na)
end
"""

# Lease expiries are the server clock plus at most a year: exact as doubles.
_PRELUDE = (
    LT
    + r"""
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function fmt(n) return string.format('%d', n) end
local function touch(ttl)
  if ttl ~= '0' then
    for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ttl) end
  end
end
local function fence_fails(fence, now)
  if fence == '' then return false end
  local l = redis.call('HMGET', KEYS[5], 'token', 'exp')
  if l[1] == fence and tonumber(l[2] or '0') > now then return false end
  return {'fence', l[1] or '', l[2] or '', fmt(now)}
end
"""
)

# ARGV: trace_id, circuit, version, step, event record, fence ('' = none), ttl ('0' = none)
APPEND = (
    _PRELUDE
    + r"""
local now = now_ms()
local bad = fence_fails(ARGV[6], now)
if bad then return bad end
local s = redis.call('HMGET', KEYS[1], 'circuit', 'completion', 'last')
if s[1] then
  if s[1] ~= ARGV[2] then return {'circuit', s[1]} end
  if s[2] then return {'completed', s[2]} end
  if redis.call('HSETNX', KEYS[2], ARGV[4], ARGV[5]) == 0 then
    return {'exists', redis.call('HGET', KEYS[2], ARGV[4])}
  end
  if lt(s[3], ARGV[4]) then
    redis.call('HSET', KEYS[1], 'updated', fmt(now), 'last', ARGV[4])
  else
    redis.call('HSET', KEYS[1], 'updated', fmt(now))
  end
else
  redis.call('HSET', KEYS[1], 'id', ARGV[1], 'circuit', ARGV[2], 'version', ARGV[3],
    'created', fmt(now), 'updated', fmt(now), 'last', ARGV[4])
  redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
end
touch(ARGV[7])
return 1
"""
)

# ARGV: from_step, fence, ttl. Later live events move to `sup` in step order.
RESUME = (
    _PRELUDE
    + r"""
local s = redis.call('HMGET', KEYS[1], 'circuit', 'completion', 'last')
if not s[1] then return {'missing'} end
if s[2] then return {'completed', s[2]} end
local from, last = ARGV[1], s[3]
if lt(last, from) then return {'step', last} end
local now = now_ms()
local bad = fence_fails(ARGV[2], now)
if bad then return bad end
if from ~= last then
  local later, keep = {}, '-1'
  for _, f in ipairs(redis.call('HKEYS', KEYS[2])) do
    if lt(from, f) then later[#later + 1] = f elseif lt(keep, f) then keep = f end
  end
  table.sort(later, lt)
  for _, f in ipairs(later) do
    redis.call('RPUSH', KEYS[3], redis.call('HGET', KEYS[2], f))
    redis.call('HDEL', KEYS[2], f)
  end
  last = keep
end
redis.call('HSET', KEYS[1], 'resumed', ARGV[1], 'updated', fmt(now), 'last', last)
touch(ARGV[3])
return {'ok'}
"""
)

# ARGV: expected current completion ('' = none), new completion, fence, ttl (a CAS:
# Python decides with rules.completion_change and retries with what it saw). A fenced
# completion releases its lease (live under that token: checked) in the same script.
COMPLETE = (
    _PRELUDE
    + r"""
local s = redis.call('HMGET', KEYS[1], 'circuit', 'completion')
if not s[1] then return {'missing'} end
if (s[2] or '') ~= ARGV[1] then return {'changed', s[2] or ''} end
local now = now_ms()
local bad = fence_fails(ARGV[3], now)
if bad then return bad end
redis.call('HSET', KEYS[1], 'completion', ARGV[2], 'completed', fmt(now), 'updated', fmt(now))
if ARGV[3] ~= '' then redis.call('HSET', KEYS[5], 'holder', '', 'exp', '0') end
touch(ARGV[4])
return {'ok'}
"""
)

# ARGV: intervention record, request id (a re-sent command is recognised), ttl
INTERVENE = (
    _PRELUDE
    + r"""
local s = redis.call('HMGET', KEYS[1], 'circuit', 'completion', 'ivreq')
if not s[1] then return {'missing'} end
if s[2] then return {'completed', s[2]} end
if s[3] ~= ARGV[2] then
  redis.call('RPUSH', KEYS[4], ARGV[1])
  redis.call('HSET', KEYS[1], 'updated', fmt(now_ms()), 'ivreq', ARGV[2])
end
touch(ARGV[3])
return {'ok'}
"""
)

SUMMARY = (
    _PRELUDE
    + r"""
local s = redis.call('HMGET', KEYS[1], 'id', 'circuit', 'version', 'completion',
  'completed', 'created', 'updated', 'resumed', 'last', 'attempts')
if not s[1] then return false end
local l = redis.call('HGET', KEYS[5], 'exp')
return {s, redis.call('HLEN', KEYS[2]), l or '0', fmt(now_ms())}
"""
)

# ARGV: cutoff_ms. Deletes the whole trace if it completed before the cutoff.
PURGE = (
    _PRELUDE
    + r"""
local s = redis.call('HMGET', KEYS[1], 'completion', 'completed')
if s[1] and s[2] and lt(s[2], ARGV[1]) then
  redis.call('DEL', unpack(KEYS))
  return 1
end
return 0
"""
)

# The whole trace in one atomic read (load_many pipelines one per trace)
LOAD = r"""
return {redis.call('HGETALL', KEYS[1]), redis.call('HVALS', KEYS[2]),
  redis.call('LRANGE', KEYS[3], 0, -1), redis.call('LRANGE', KEYS[4], 0, -1)}
"""

DELETE = r"""
local n = redis.call('EXISTS', KEYS[1])
redis.call('DEL', unpack(KEYS))
return n
"""

# ARGV: ttl, then four counted groups: state field/value pairs, event step/record
# pairs, superseded records, intervention records. Writes nothing if the trace exists.
IMPORT = (
    _PRELUDE
    + r"""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local i = 2
local function take()
  local n, t = tonumber(ARGV[i]), {}
  for j = 1, n do t[j] = ARGV[i + j] end
  i = i + n + 1
  return t
end
local function put(cmd, key, t)
  for j = 1, #t, 1000 do redis.call(cmd, key, unpack(t, j, math.min(j + 999, #t))) end
end
put('HSET', KEYS[1], take())
put('HSET', KEYS[2], take())
put('RPUSH', KEYS[3], take())
put('RPUSH', KEYS[4], take())
touch(ARGV[1])
return 1
"""
)

_LEASE_TOUCH = r"""
-- n + 1 exactly (tokens go up to 2^63-1); doubles are exact below 15 digits
local function incr(n)
  if #n < 15 then return fmt(tonumber(n) + 1) end
  local i = #n
  while string.byte(n, i) == 57 do i = i - 1 end
  local head = i == 0 and '1' or string.sub(n, 1, i - 1) .. string.char(string.byte(n, i) + 1)
  return head .. string.rep('0', #n - i)
end
local function touch_lease(ttl, ms)
  touch(ttl)
  if ttl ~= '0' and redis.call('PTTL', KEYS[5]) < ms then
    redis.call('PEXPIRE', KEYS[5], ms)
  end
end
"""

# ARGV: holder, ttl_ms, request id, key ttl; with a start also trace_id, circuit, version,
# input ('' = null). The token survives release, so it only grows. An acquisition counts
# an attempt of an unfinished trace; with a start, a trace not stored yet is created
# (no events). A re-sent request whose lease is still live changes nothing again.
LEASE_ACQUIRE = (
    _PRELUDE
    + _LEASE_TOUCH
    + r"""
local now = now_ms()
local l = redis.call('HMGET', KEYS[5], 'holder', 'token', 'exp', 'req')
if tonumber(l[3] or '0') > now then
  if l[4] == ARGV[3] then return {l[2], l[3]} end
  return false
end
local token = incr(l[2] or '0')
local exp = fmt(now + tonumber(ARGV[2]))
redis.call('HSET', KEYS[5], 'holder', ARGV[1], 'token', token, 'exp', exp, 'req', ARGV[3])
local s = redis.call('HMGET', KEYS[1], 'circuit', 'completion')
if s[1] then
  if not s[2] then redis.call('HINCRBY', KEYS[1], 'attempts', 1) end
elseif ARGV[5] then
  redis.call('HSET', KEYS[1], 'id', ARGV[5], 'circuit', ARGV[6], 'version', ARGV[7],
    'created', fmt(now), 'updated', fmt(now), 'last', '-1', 'attempts', '1')
  if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'input', ARGV[8]) end
end
touch_lease(ARGV[4], tonumber(ARGV[2]))
return {token, exp}
"""
)

# ARGV: token, key ttl. Never lowers the token; a live lease under a lower one is lost.
LEASE_RAISE = (
    _PRELUDE
    + r"""
local cur = redis.call('HGET', KEYS[5], 'token')
if cur and not lt(cur, ARGV[1]) then return 0 end
redis.call('HSET', KEYS[5], 'holder', '', 'token', ARGV[1], 'exp', '0')
touch(ARGV[2])
return 1
"""
)

# ARGV: token, ttl_ms, key ttl
LEASE_RENEW = (
    _PRELUDE
    + _LEASE_TOUCH
    + r"""
local now = now_ms()
local l = redis.call('HMGET', KEYS[5], 'token', 'exp')
if l[1] ~= ARGV[1] or tonumber(l[2] or '0') <= now then
  return {'fence', l[1] or '', l[2] or '', fmt(now)}
end
local exp = fmt(now + tonumber(ARGV[2]))
redis.call('HSET', KEYS[5], 'exp', exp)
touch_lease(ARGV[3], tonumber(ARGV[2]))
return {'ok', exp}
"""
)

# ARGV: token, request id. Returns 1 if a live lease was given up.
LEASE_RELEASE = (
    _PRELUDE
    + r"""
local l = redis.call('HMGET', KEYS[5], 'holder', 'token', 'exp', 'relreq', 'relres')
if l[4] == ARGV[2] then return tonumber(l[5]) end
if l[2] ~= ARGV[1] or not l[1] or l[1] == '' then return 0 end
local live = 0
if tonumber(l[3]) > now_ms() then live = 1 end
redis.call('HSET', KEYS[5], 'holder', '', 'exp', '0', 'relreq', ARGV[2], 'relres', live)
return live
"""
)

LEASE_GET = (
    _PRELUDE
    + r"""
local l = redis.call('HMGET', KEYS[5], 'holder', 'token', 'exp')
return {l[1] or '', l[2] or '', l[3] or '', fmt(now_ms())}
"""
)

# Compensation records (one string key each): `state \0 claimed_ms \0 compensated_ms \0 req`.
# A claim never expires (its hook may still be running, or died: an operator decides);
# with a TTL, a key expires `ttl` s after it was marked compensated.
# ARGV: request id. SET NX claims; a re-sent claim is recognised by its request id.
COMP_CLAIM = (
    _PRELUDE
    + r"""
local v = 'claimed\0' .. fmt(now_ms()) .. '\0\0' .. ARGV[1]
if redis.call('SET', KEYS[1], v, 'NX') then return 1 end
local cur = redis.call('GET', KEYS[1])
local tail = '\0' .. ARGV[1]
if cur and string.sub(cur, -#tail) == tail then return 1 end
return 0
"""
)

_COMP_SET = r"""
local function set_record(v, ttl)
  if ttl ~= '0' and string.sub(v, 1, 12) == 'compensated\0' then
    redis.call('SET', KEYS[1], v, 'EX', ttl)
  else
    redis.call('SET', KEYS[1], v)
  end
end
"""

# ARGV: ttl. Keeps the claim time of an existing claim.
COMP_MARK = (
    _PRELUDE
    + _COMP_SET
    + r"""
local now = fmt(now_ms())
local cur = redis.call('GET', KEYS[1])
if not cur then
  set_record('compensated\0' .. now .. '\0' .. now .. '\0', ARGV[1])
  return 1
end
local state, claimed = string.match(cur, '^(%a+)%z(%d+)%z')
if state == 'compensated' then return 0 end
set_record('compensated\0' .. claimed .. '\0' .. now .. '\0', ARGV[1])
return 1
"""
)

# ARGV: the value read before ('' = none), the record to store, ttl. A compare-and-set:
# Python decides with rules.merged_record and tries again with what it finds.
COMP_IMPORT = (
    _COMP_SET
    + r"""
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then return {0, cur} end
set_record(ARGV[2], ARGV[3])
return {1, ''}
"""
)

COMP_RELEASE = r"""
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, 8) == 'claimed\0' then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# ARGV: cutoff_ms. Only a key compensated before the cutoff goes, never a claim.
COMP_PURGE = (
    _PRELUDE
    + r"""
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local done = string.match(cur, '^compensated%z%d+%z(%d+)%z')
if done and lt(done, ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""
)
