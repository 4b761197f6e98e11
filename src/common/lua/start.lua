-- start: KEYS job proc [workers]; ARGV id token [wid] -> the job's fields | nil (skip it)
-- Runs after BLMOVE ready -> proc: a fresh fencing token and one more attempt.
-- With workers/wid, the worker is (again) listed in its node's workers set, so
-- that a reaper finds the job even after this node was once taken for dead.
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  return false
end
redis.call('HSET', KEYS[1], 'state', 'processing', 'started', string.format('%d', now_ms()),
           'token', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
local client = redis.call('HGET', KEYS[1], 'client_key')
if client then redis.call('ZREM', client, ARGV[1]) end
if KEYS[3] then redis.call('SADD', KEYS[3], ARGV[3]) end
return redis.call('HGETALL', KEYS[1])
