-- enqueue: KEYS job ready delayed src idem req
-- ARGV id max_queue bytes has_bytes dedup_ttl_ms prefix fields...
-- -> {'ok', created_ms} | {'dup', id, field, value, ...} | {'full', depth}
-- idem (Idempotency-Key) and req (the request's own hash) are '' when unused.
for _, k in ipairs({KEYS[5], KEYS[6]}) do
  local id = live_job(k, ARGV[6])
  if id then
    local fields = redis.call('HGETALL', '{' .. ARGV[6] .. '}:job:' .. id)
    table.insert(fields, 1, id)
    table.insert(fields, 1, 'dup')
    return fields
  end
end
local depth = redis.call('LLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3])
if depth >= tonumber(ARGV[2]) then return {'full', depth} end
local now = string.format('%d', now_ms())
redis.call('HSET', KEYS[1], 'state', 'queued', 'created', now, 'attempts', 0,
           'idem_key', KEYS[5], 'req_key', KEYS[6], unpack(ARGV, 7))
if ARGV[4] == '1' then redis.call('SET', KEYS[4], ARGV[3]) end
if KEYS[5] ~= '' then redis.call('SET', KEYS[5], ARGV[1], 'PX', ARGV[5]) end
if KEYS[6] ~= '' then redis.call('SET', KEYS[6], ARGV[1], 'PX', ARGV[5]) end
redis.call('RPUSH', KEYS[2], ARGV[1])
return {'ok', now}
