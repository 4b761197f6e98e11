-- release: the jobs a gone worker held. KEYS proc ready workers delayed dead
-- ARGV mode(requeue|fail) code message wid prefix ttl max base cap jitter deadmax -> jobs
-- requeue: back to the front of ready (a clean stop). fail: a transient failure
-- (crash, timeout, lost node) under the retry policy. A job taken but not yet
-- started is requeued either way. The same for a delivery child's
-- deliveries ({p}:wh:proc:<wid>).
-- A job killed at worker.job_timeout is counted (the job's `timeouts` field):
-- a job that ran too long twice will run too long again, so the second kill
-- fails it for good (permanent job_timeout) instead of spending the attempts
-- left on it.
local TIMEOUTS_MAX = 2
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
local now = now_ms()
local P = policy(5, KEYS[4], KEYS[5])
local n = 0
for i = #ids, 1, -1 do
  local id = ids[i]
  local job = '{' .. P.prefix .. '}:job:' .. id
  local state = redis.call('HGET', job, 'state')
  if state == 'queued' or (state == 'processing' and ARGV[1] == 'requeue') then
    redis.call('HSET', job, 'state', 'queued')
    redis.call('HDEL', job, 'token')
    redis.call('LPUSH', KEYS[2], id)
    if state == 'processing' then publish_changed(P.prefix, id) end
    n = n + 1
  elseif state == 'processing' then
    local transient, msg = true, ARGV[3]
    if ARGV[2] == 'job_timeout' then
      local timeouts = redis.call('HINCRBY', job, 'timeouts', 1)
      if timeouts >= TIMEOUTS_MAX then
        transient = false
        msg = msg .. string.format(' (%d times: not retried)', timeouts)
      end
    end
    settle_failure(job, id, ARGV[2], msg, transient, now, P)
    n = n + 1
  end
end
redis.call('DEL', KEYS[1])
-- A delivery child's deliveries go back to the front of their queue, to be
-- tried again without counting an attempt (their ids stay the same).
local wh = '{' .. P.prefix .. '}:wh:'
local held = redis.call('LRANGE', wh .. 'proc:' .. ARGV[4], 0, -1)
for i = #held, 1, -1 do
  redis.call('LPUSH', wh .. 'ready', held[i])
  n = n + 1
end
redis.call('DEL', wh .. 'proc:' .. ARGV[4])
redis.call('SREM', KEYS[3], ARGV[4])
return n
