-- common.lua: put before every script (src/common/embed_lua.cmake). Time comes
-- from Redis TIME so that every node agrees on it.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The job's document changed, or the job is gone, in a way a node's shared
-- cache must hear of at once: deleted, canceled, put back for a retry, a
-- delivery's status. Every http child of every node drops its node's entry on
-- this message (docs/ARCHITECTURE.md §4.3). Published in the script that makes
-- the change, so no reader sees the change before the message is sent.
local function publish_changed(prefix, id)
  redis.call('PUBLISH', '{' .. prefix .. '}:changed', id)
end

-- A job reached a terminal state: queue its deliveries (a callback when done
-- or failed, an e-mail when done) and tell long-polling readers. A delivery is
-- created once per job (HSETNX on the job), so a job run twice is delivered
-- once. Delivery ids are "<kind>:<job id>" with kind cb or mail; their records
-- are {p}:wh:d:<delivery id>, queued on {p}:wh:ready (docs/ARCHITECTURE.md §6).
local function on_terminal(job, id, prefix, state)
  local p = '{' .. prefix .. '}:'
  local function deliver(kind, field)
    local to = redis.call('HGET', job, field)
    if to and to ~= '' and redis.call('HSETNX', job, kind .. '_status', 'pending') == 1 then
      local did = kind .. ':' .. id
      redis.call('HSET', p .. 'wh:d:' .. did, 'job', id, 'kind', kind, 'to', to,
                 'attempts', '0', 'status', 'pending', 'created', string.format('%d', now_ms()))
      redis.call('RPUSH', p .. 'wh:ready', did)
    end
  end
  if state == 'done' or state == 'failed' then deliver('cb', 'callback_url') end
  if state == 'done' then deliver('mail', 'email') end
  redis.call('PUBLISH', p .. 'done', id)
end

-- The admin overview's figures (docs/ARCHITECTURE.md §3.1). Finished jobs are
-- indexed by finish time in {p}:recent:done and {p}:recent:failed, each entry
-- kept while its job lives (its ttl) and the newest RECENT_MAX only.
local RECENT_MAX = 10000
-- Per-minute counts {p}:stats:<floor(ms / 60000)>, kept a little over an hour.
local STATS_TTL_S = 3900
-- The upper bounds (ms) of the attempt-duration buckets d0..d11, d12 = +Inf:
-- JOBSTATS_BOUNDS_MS of src/common/jobstats.h (test_queue.c checks they agree).
local DURATION_BOUNDS_MS = {10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000}

-- Counts an attempt's outcome what (done, failed, retried) in the minute of
-- now, with the source bytes it fetched and its run time ms (both nil when
-- unknown: the master's releases).
local function count_attempt(prefix, now, what, ms, bytes)
  local k = '{' .. prefix .. '}:stats:' .. string.format('%d', math.floor(now / 60000))
  redis.call('HINCRBY', k, what, 1)
  if bytes and bytes > 0 then redis.call('HINCRBY', k, 'bytes', string.format('%d', bytes)) end
  if ms and ms >= 0 then
    local i = #DURATION_BOUNDS_MS
    for b, bound in ipairs(DURATION_BOUNDS_MS) do
      if ms <= bound then
        i = b - 1
        break
      end
    end
    redis.call('HINCRBY', k, 'd' .. i, 1)
  end
  redis.call('EXPIRE', k, STATS_TTL_S)
end

-- The object store (storage.backend = s3): objects to delete wait on
-- {p}:drop (member: the object key; score: when it is due, ms) for a worker
-- to delete them (store_sweep.lua). drop_fields puts there, due at due, the
-- objects the job's hash names in each given field (a space-separated list
-- of keys: src_obj, the upload; res_obj, the results).
local function drop_list(prefix, list, due)
  for key in string.gmatch(list or '', '%S+') do
    redis.call('ZADD', '{' .. prefix .. '}:drop', string.format('%d', due), key)
  end
end

local function drop_fields(prefix, job, due, ...)
  for _, f in ipairs({...}) do
    local list = redis.call('HGET', job, f)
    if list then drop_list(prefix, list, due) end
  end
end

-- The value of field name among name/value pairs ARGV[from..], or nil.
local function arg_field(from, name)
  for i = from, #ARGV - 1, 2 do
    if ARGV[i] == name then return ARGV[i + 1] end
  end
  return nil
end

-- Indexes job id, finished at now, in {p}:recent:<kind> (done or failed); what
-- finished more than ttl ms ago (its job has expired) and all but the newest
-- RECENT_MAX leave it.
local function index_finished(prefix, kind, id, now, ttl)
  local k = '{' .. prefix .. '}:recent:' .. kind
  redis.call('ZADD', k, string.format('%d', now), id)
  redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. string.format('%d', now - ttl))
  redis.call('ZREMRANGEBYRANK', k, 0, -(RECENT_MAX + 1))
end

-- The failure policy, one place for the worker's failures and for the jobs of
-- a worker that is gone. P = {prefix, ttl, max, base, cap, jitter, deadmax,
-- delayed, dead}. A transient failure with attempts left goes to the delayed
-- set with backoff min(cap, base * 2^(attempts-1)) scaled by [0.5, 1) of
-- jitter; out of attempts it goes to the dead set; a permanent one fails.
-- Either way the attempt is counted (count_attempt, with P.ms and P.bytes when
-- the worker told them), and a failed job is indexed in {p}:recent:failed.
-- Returns 2 retry, 3 dead, 1 failed.
local function settle_failure(job, id, code, msg, transient, now, P)
  local attempts = tonumber(redis.call('HGET', job, 'attempts') or '0')
  redis.call('HDEL', job, 'token')
  if transient and attempts < P.max then
    local delay = math.min(P.cap, P.base * 2 ^ math.max(attempts - 1, 0))
    delay = math.floor(delay * (0.5 + P.jitter / 2))
    local due = now + delay
    redis.call('HSET', job, 'state', 'queued', 'err_code', code, 'err_msg', msg,
               'retry_at', string.format('%d', due))
    redis.call('ZADD', P.delayed, string.format('%d', due), id)
    publish_changed(P.prefix, id)
    count_attempt(P.prefix, now, 'retried', P.ms, P.bytes)
    return 2
  end
  redis.call('HSET', job, 'state', 'failed', 'finished', string.format('%d', now),
             'err_code', code, 'err_msg', msg)
  redis.call('PEXPIRE', job, P.ttl)
  redis.call('DEL', '{' .. P.prefix .. '}:src:' .. id)
  drop_fields(P.prefix, job, now, 'src_obj')
  redis.call('HDEL', job, 'src_obj')
  on_terminal(job, id, P.prefix, 'failed')
  count_attempt(P.prefix, now, 'failed', P.ms, P.bytes)
  index_finished(P.prefix, 'failed', id, now, P.ttl)
  if transient then
    redis.call('ZADD', P.dead, string.format('%d', now), id)
    redis.call('ZREMRANGEBYRANK', P.dead, 0, -(P.deadmax + 1))
    return 3
  end
  return 1
end

-- The policy from ARGV[i..i+6]: prefix ttl max base cap jitter deadmax. The
-- caller may add ms and bytes (the attempt's run time and fetched bytes).
local function policy(i, delayed, dead)
  return {prefix = ARGV[i], ttl = tonumber(ARGV[i + 1]), max = tonumber(ARGV[i + 2]),
          base = tonumber(ARGV[i + 3]), cap = tonumber(ARGV[i + 4]),
          jitter = tonumber(ARGV[i + 5]), deadmax = tonumber(ARGV[i + 6]),
          delayed = delayed, dead = dead}
end

-- The id of a live job a dedup key points at (not failed or canceled), or nil.
local function live_job(key, prefix)
  if key == '' then return nil end
  local id = redis.call('GET', key)
  if not id then return nil end
  local state = redis.call('HGET', '{' .. prefix .. '}:job:' .. id, 'state')
  if state == false or state == 'failed' or state == 'canceled' then return nil end
  return id
end

-- Starts job id, which is in the worker's proc list: a fresh fencing token and
-- one more attempt, and the worker (again) in its node's workers set (with
-- workers/wid), so that a reaper finds the job even after this node was once
-- taken for dead. A job no longer queued (canceled, gone) leaves proc and is
-- skipped: false. Else the job's fields (start.lua, take.lua).
local function start_job(job, proc, workers, id, token, wid)
  if redis.call('HGET', job, 'state') ~= 'queued' then
    redis.call('LREM', proc, 0, id)
    return false
  end
  redis.call('HSET', job, 'state', 'processing', 'started', string.format('%d', now_ms()),
             'token', token)
  redis.call('HINCRBY', job, 'attempts', 1)
  local client = redis.call('HGET', job, 'client_key')
  if client then redis.call('ZREM', client, id) end
  if workers then redis.call('SADD', workers, wid) end
  return redis.call('HGETALL', job)
end
