-- fail: KEYS job proc delayed dead
-- ARGV id token code message transient(0|1) prefix ttl max base cap jitter deadmax
--      ms src_bytes fields...
-- ms is the attempt's run time and src_bytes what it fetched of the source
-- (the admin overview's figures; '' when unknown).
-- -> 0 stale | 1 failed | 2 retry scheduled | 3 dead (out of attempts)
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  return 0
end
if #ARGV > 14 then redis.call('HSET', KEYS[1], unpack(ARGV, 15)) end
local P = policy(6, KEYS[3], KEYS[4])
P.ms, P.bytes = tonumber(ARGV[13]), tonumber(ARGV[14])
local rc = settle_failure(KEYS[1], ARGV[1], ARGV[3], ARGV[4], ARGV[5] == '1', now_ms(), P)
redis.call('LREM', KEYS[2], 0, ARGV[1])
return rc
