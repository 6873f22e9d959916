"""The Redis store's Lua scripts: one per write, each on the keys of one trace (or one
compensation key), run atomically on its slot. Key shapes and record formats are in
`redis_keys`. Times come from the server (`TIME`), never from the client.

A trace script receives the trace's keys as KEYS[1..5] in `redis_keys.TRACE_KINDS`
order: state, ev, sup, iv, lease.
"""

from __future__ import annotations

_PRELUDE = r"""
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
  if tonumber(ARGV[4]) > tonumber(s[3]) then
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
local from, last = tonumber(ARGV[1]), tonumber(s[3])
if from > last then return {'step', s[3]} end
local now = now_ms()
local bad = fence_fails(ARGV[2], now)
if bad then return bad end
if from < last then
  local later, keep = {}, -1
  for _, f in ipairs(redis.call('HKEYS', KEYS[2])) do
    local n = tonumber(f)
    if n > from then later[#later + 1] = {n, f} elseif n > keep then keep = n end
  end
  table.sort(later, function(a, b) return a[1] < b[1] end)
  for _, e in ipairs(later) do
    redis.call('RPUSH', KEYS[3], redis.call('HGET', KEYS[2], e[2]))
    redis.call('HDEL', KEYS[2], e[2])
  end
  last = keep
end
redis.call('HSET', KEYS[1], 'resumed', ARGV[1], 'updated', fmt(now), 'last', fmt(last))
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
PURGE = r"""
local s = redis.call('HMGET', KEYS[1], 'completion', 'completed')
if s[1] and tonumber(s[2]) < tonumber(ARGV[1]) then
  redis.call('DEL', unpack(KEYS))
  return 1
end
return 0
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
local token = fmt(tonumber(l[2] or '0') + 1)
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

# Compensation records (one string key each): `state \0 claimed_ms \0 compensated_ms \0 req`
# ARGV: request id, ttl ('0' = none). SET NX (EX) claims; a re-sent claim is recognised.
COMP_CLAIM = (
    _PRELUDE
    + r"""
local v = 'claimed\0' .. fmt(now_ms()) .. '\0\0' .. ARGV[1]
local ok
if ARGV[2] ~= '0' then
  ok = redis.call('SET', KEYS[1], v, 'NX', 'EX', ARGV[2])
else
  ok = redis.call('SET', KEYS[1], v, 'NX')
end
if ok then return 1 end
local cur = redis.call('GET', KEYS[1])
local tail = '\0' .. ARGV[1]
if cur and string.sub(cur, -#tail) == tail then return 1 end
return 0
"""
)

# ARGV: ttl. Keeps the claim time (and the key's TTL) of an existing claim.
COMP_MARK = (
    _PRELUDE
    + r"""
local now = fmt(now_ms())
local cur = redis.call('GET', KEYS[1])
if not cur then
  local v = 'compensated\0' .. now .. '\0' .. now .. '\0'
  if ARGV[1] ~= '0' then redis.call('SET', KEYS[1], v, 'EX', ARGV[1])
  else redis.call('SET', KEYS[1], v) end
  return 1
end
local state, claimed = string.match(cur, '^(%a+)%z(%d+)%z')
if state == 'compensated' then return 0 end
redis.call('SET', KEYS[1], 'compensated\0' .. claimed .. '\0' .. now .. '\0', 'KEEPTTL')
return 1
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

# ARGV: cutoff_ms
COMP_PURGE = r"""
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local claimed = string.match(cur, '^%a+%z(%d+)%z')
if tonumber(claimed) < tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""
