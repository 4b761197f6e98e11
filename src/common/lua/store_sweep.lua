-- store_sweep: KEYS drop; ARGV lease_ms limit -> the object keys to delete now
-- Hands out at most limit objects of {p}:drop that are due, each leased: its
-- score moves lease_ms ahead, so that another worker does not take it too and
-- it comes back should this one die before deleting it. The worker ZREMs
-- each once it is deleted (or was already gone).
local now = now_ms()
local keys = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now),
                        'LIMIT', 0, tonumber(ARGV[2]))
local lease = string.format('%d', now + tonumber(ARGV[1]))
for _, k in ipairs(keys) do redis.call('ZADD', KEYS[1], 'XX', lease, k) end
return keys
