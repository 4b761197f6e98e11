-- complete: KEYS job res proc src;
-- ARGV id token ttl_ms bytes prefix ms src_bytes store fields...
-- store says where the result is: 'redis' (bytes, or '' when it is already in
-- res: staged and replicated first), 's3' (in the object store, the keys in
-- the field res_obj, deleted at ttl through {p}:drop) or 's3-lifecycle' (the
-- same, left to the bucket's lifecycle rules).
-- ms is the attempt's run time and src_bytes what it fetched of the source
-- (the admin overview's figures; '' when unknown).
-- -> {1, pttl, fields...} stored: the job as it now is, for the node's shared
-- cache without another round trip | 0 stale (the token no longer matches:
-- the job was reaped) | -1 the staged result is missing
local store = ARGV[8]
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then
  redis.call('LREM', KEYS[3], 0, ARGV[1])
  -- A stale worker's objects go, unless they are (or are about to be) the
  -- job's own result: the worker that took the job over writes the same keys.
  local mine = arg_field(9, 'res_obj')
  local state = redis.call('HGET', KEYS[1], 'state')
  if mine and state ~= 'queued' and state ~= 'processing' and
      not (state == 'done' and redis.call('HGET', KEYS[1], 'res_obj') == mine) then
    drop_list(ARGV[5], mine, now_ms())
  end
  return 0
end
if store ~= 'redis' then
  -- nothing of the result in Redis
elseif ARGV[4] ~= '' then
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[3])
elseif redis.call('PEXPIRE', KEYS[2], ARGV[3]) == 0 then
  return -1 -- the result staged for redis.min_replicas_ack is gone: stage it again
end
local now = now_ms()
redis.call('HSET', KEYS[1], 'state', 'done', 'finished', string.format('%d', now),
           unpack(ARGV, 9))
redis.call('HDEL', KEYS[1], 'token', 'err_code', 'err_msg', 'retry_at')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
for _, f in ipairs({'idem_key', 'req_key'}) do
  local k = redis.call('HGET', KEYS[1], f)
  if k and k ~= '' and redis.call('GET', k) == ARGV[1] then redis.call('PEXPIRE', k, ARGV[3]) end
end
redis.call('LREM', KEYS[3], 0, ARGV[1])
redis.call('DEL', KEYS[4])
if store == 's3' then drop_fields(ARGV[5], KEYS[1], now + tonumber(ARGV[3]), 'res_obj') end
drop_fields(ARGV[5], KEYS[1], now, 'src_obj')
redis.call('HDEL', KEYS[1], 'src_obj')
on_terminal(KEYS[1], ARGV[1], ARGV[5], 'done')
count_attempt(ARGV[5], now, 'done', tonumber(ARGV[6]), tonumber(ARGV[7]))
index_finished(ARGV[5], 'done', ARGV[1], now, tonumber(ARGV[3]))
local fields = redis.call('HGETALL', KEYS[1])
table.insert(fields, 1, redis.call('PTTL', KEYS[1]))
table.insert(fields, 1, 1)
return fields
