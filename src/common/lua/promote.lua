-- promote: KEYS delayed ready; ARGV prefix limit -> ids moved
-- Retries whose time has come go to the back of ready. Idempotent: any number
-- of masters may run it.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now_ms()),
                       'LIMIT', 0, tonumber(ARGV[2]))
local n = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  if redis.call('HGET', '{' .. ARGV[1] .. '}:job:' .. id, 'state') == 'queued' then
    redis.call('RPUSH', KEYS[2], id)
    n = n + 1
  end
end
return n
