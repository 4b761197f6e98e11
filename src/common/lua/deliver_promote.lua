-- deliver_promote: KEYS delayed ready; ARGV limit -> deliveries moved
-- Delivery retries whose time has come go to the back of {p}:wh:ready.
-- Idempotent: any number of masters may run it.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now_ms()),
                       'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('RPUSH', KEYS[2], id)
end
return #ids
