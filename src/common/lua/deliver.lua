-- deliver: the outcome of one delivery attempt (a callback or an e-mail).
-- KEYS d proc delayed dead job
-- ARGV did outcome(delivered|retry|failed|stopped) last_status last_error delay_ms ttl_ms deadmax
--      prefix
-- -> 1 recorded | 0 no such delivery
-- The attempt is counted on the delivery record and mirrored on the job hash
-- (<kind>_status, _attempts, _last_status, _last_error) for the job document,
-- which every node's cache then hears of ({p}:changed).
-- retry: back on the delayed set, due in delay_ms. failed: out of attempts or
-- refused for good; kept on the dead set. stopped: the receiver answered 410.
local kind = redis.call('HGET', KEYS[1], 'kind')
redis.call('LREM', KEYS[2], 0, ARGV[1])
if not kind then return 0 end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
local status = ARGV[2] == 'retry' and 'pending' or ARGV[2]
local now = now_ms()
redis.call('HSET', KEYS[1], 'status', status, 'last_status', ARGV[3], 'last_error', ARGV[4],
           'last_at', string.format('%d', now))
if redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('HSET', KEYS[5], kind .. '_status', status, kind .. '_attempts', attempts,
             kind .. '_last_status', ARGV[3], kind .. '_last_error', ARGV[4])
  publish_changed(ARGV[8], redis.call('HGET', KEYS[1], 'job'))
end
if ARGV[2] == 'retry' then
  redis.call('ZADD', KEYS[3], string.format('%d', now + tonumber(ARGV[5])), ARGV[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  if ARGV[2] == 'failed' then
    redis.call('ZADD', KEYS[4], string.format('%d', now), ARGV[1])
    redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -(tonumber(ARGV[7]) + 1))
  end
end
return 1
