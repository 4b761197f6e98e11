-- delete: KEYS job res src ready delayed; ARGV id ttl_ms prefix [owner]
-- (The job's objects in the store, its upload and results, go on {p}:drop,
-- due now.)
-- -> 1 | 0 (no such job, or, with owner, a job of another owner)
-- A queued or processing job becomes canceled (its token cleared, so a
-- worker's late completion changes nothing); a finished one is deleted, and
-- leaves the admin indices ({p}:recent:done, {p}:recent:failed, {p}:dead).
-- Either way every node's cache hears of it ({p}:changed); a cancel also
-- ends the long-polls on the job ({p}:done).
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
if ARGV[4] and ARGV[4] ~= '' then
  local owner = redis.call('HGET', KEYS[1], 'owner')
  if owner and owner ~= ARGV[4] then return 0 end
end
if state == 'queued' or state == 'processing' then
  redis.call('HSET', KEYS[1], 'state', 'canceled', 'finished', string.format('%d', now_ms()))
  redis.call('HDEL', KEYS[1], 'token')
  redis.call('LREM', KEYS[4], 0, ARGV[1])
  redis.call('ZREM', KEYS[5], ARGV[1])
  local client = redis.call('HGET', KEYS[1], 'client_key')
  if client then redis.call('ZREM', client, ARGV[1]) end
  redis.call('DEL', KEYS[3])
  drop_fields(ARGV[3], KEYS[1], now_ms(), 'src_obj')
  redis.call('HDEL', KEYS[1], 'src_obj')
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PUBLISH', '{' .. ARGV[3] .. '}:done', ARGV[1])
else
  drop_fields(ARGV[3], KEYS[1], now_ms(), 'src_obj', 'res_obj')
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  local p = '{' .. ARGV[3] .. '}:'
  redis.call('ZREM', p .. 'recent:done', ARGV[1])
  redis.call('ZREM', p .. 'recent:failed', ARGV[1])
  redis.call('ZREM', p .. 'dead', ARGV[1])
end
publish_changed(ARGV[3], ARGV[1])
return 1
