-- complete: KEYS job res proc src; ARGV id token ttl_ms bytes prefix ms src_bytes fields...
-- bytes '' means the result is already in res (staged and replicated first).
-- ms is the attempt's run time and src_bytes what it fetched of the source
-- (the admin overview's figures; '' when unknown).
-- -> 1 stored | 0 stale (the token no longer matches: the job was reaped)
-- | -1 the staged result is missing
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then
  redis.call('LREM', KEYS[3], 0, ARGV[1])
  return 0
end
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[3])
elseif redis.call('PEXPIRE', KEYS[2], ARGV[3]) == 0 then
  return -1 -- the result staged for redis.min_replicas_ack is gone: stage it again
end
local now = now_ms()
redis.call('HSET', KEYS[1], 'state', 'done', 'finished', string.format('%d', now),
           unpack(ARGV, 8))
redis.call('HDEL', KEYS[1], 'token', 'err_code', 'err_msg', 'retry_at')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
for _, f in ipairs({'idem_key', 'req_key'}) do
  local k = redis.call('HGET', KEYS[1], f)
  if k and k ~= '' and redis.call('GET', k) == ARGV[1] then redis.call('PEXPIRE', k, ARGV[3]) end
end
redis.call('LREM', KEYS[3], 0, ARGV[1])
redis.call('DEL', KEYS[4])
on_terminal(KEYS[1], ARGV[1], ARGV[5], 'done')
count_attempt(ARGV[5], now, 'done', tonumber(ARGV[6]), tonumber(ARGV[7]))
index_finished(ARGV[5], 'done', ARGV[1], now, tonumber(ARGV[3]))
return 1
