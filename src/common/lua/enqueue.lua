-- enqueue: KEYS job ready delayed src idem req client
-- ARGV id max_queue bytes has_bytes dedup_ttl_ms prefix max_client fields...
-- -> {'ok', created_ms} | {'dup', id, field, value, ...} | {'full', depth}
--    | {'client_full', waiting}
-- idem (Idempotency-Key) and req (the request's own hash) are '' when unused.
-- An upload already put in the object store (the field src_obj) is dropped
-- (on {p}:drop, due now) when the submit is refused or is a repeat.
-- client is the submitter's set of jobs waiting to start (a ZSET by creation
-- time, entries older than dedup_ttl_ms dropped), '' without a bound; at
-- max_client of them the submit is refused. start.lua and delete.lua take a
-- job out of it.
local function refused()
  local obj = arg_field(8, 'src_obj')
  if obj then drop_list(ARGV[6], obj, now_ms()) end
end
for _, k in ipairs({KEYS[5], KEYS[6]}) do
  local id = live_job(k, ARGV[6])
  if id then
    refused()
    local fields = redis.call('HGETALL', '{' .. ARGV[6] .. '}:job:' .. id)
    table.insert(fields, 1, id)
    table.insert(fields, 1, 'dup')
    return fields
  end
end
local depth = redis.call('LLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3])
if depth >= tonumber(ARGV[2]) then
  refused()
  return {'full', depth}
end
local t = now_ms()
local stale = string.format('%d', t - tonumber(ARGV[5]))
if KEYS[7] ~= '' then
  local waiting = redis.call('ZCOUNT', KEYS[7], '(' .. stale, '+inf')
  if waiting >= tonumber(ARGV[7]) then
    refused()
    return {'client_full', waiting}
  end
end
-- The first write must be one Redis refuses when it is out of memory (HSET):
-- once a script has written anything, Redis lets its later writes through.
local now = string.format('%d', t)
redis.call('HSET', KEYS[1], 'state', 'queued', 'created', now, 'attempts', 0,
           'idem_key', KEYS[5], 'req_key', KEYS[6], unpack(ARGV, 8))
if KEYS[7] ~= '' then
  redis.call('HSET', KEYS[1], 'client_key', KEYS[7])
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', stale)
  redis.call('ZADD', KEYS[7], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[7], ARGV[5])
end
if ARGV[4] == '1' then redis.call('SET', KEYS[4], ARGV[3]) end
if KEYS[5] ~= '' then redis.call('SET', KEYS[5], ARGV[1], 'PX', ARGV[5]) end
if KEYS[6] ~= '' then redis.call('SET', KEYS[6], ARGV[1], 'PX', ARGV[5]) end
redis.call('RPUSH', KEYS[2], ARGV[1])
return {'ok', now}
