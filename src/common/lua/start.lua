-- start: KEYS job proc; ARGV id token -> the job's fields | nil (skip it)
-- Runs after BLMOVE ready -> proc: a fresh fencing token and one more attempt.
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  return false
end
redis.call('HSET', KEYS[1], 'state', 'processing', 'started', string.format('%d', now_ms()),
           'token', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return redis.call('HGETALL', KEYS[1])
