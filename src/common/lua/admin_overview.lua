-- admin_overview: KEYS ready delayed dead; ARGV prefix result_ttl_ms failure_ttl_ms minutes
-- -> one JSON string (cjson), the fleet's part of GET /v1/admin/overview
-- (docs/API.md §13.1): now_ms, paused, queues, jobs, nodes (each node's
-- heartbeat regrouped into workers, http and delivery), and series for the
-- last `minutes` minutes (the current one last) with each minute's duration
-- buckets d0..d12 raw in series.buckets: the http child makes p50/p95 of them.
-- Read-only, and bounded: at most NODES_MAX nodes and WORKERS_MAX wids a node.
-- cjson writes an empty table as {}: the reader takes that for [].
local NODES_MAX, WORKERS_MAX, MINUTES_MAX = 256, 1024, 120
local p = '{' .. ARGV[1] .. '}:'
local now = now_ms()
local function alive(key, ttl)
  return redis.call('ZCOUNT', key, string.format('%d', now - tonumber(ttl)), '+inf')
end

local processing, nodes = 0, {}
local members = redis.call('SMEMBERS', p .. 'nodes')
table.sort(members)
for i = 1, math.min(#members, NODES_MAX) do
  local id = members[i]
  local wids = redis.call('SMEMBERS', p .. 'workers:' .. id)
  for k = 1, math.min(#wids, WORKERS_MAX) do
    processing = processing + redis.call('LLEN', p .. 'proc:' .. wids[k])
  end
  local raw = redis.call('GET', p .. 'hb:' .. id)
  local ok, hb = false, nil
  if raw then ok, hb = pcall(cjson.decode, raw) end
  if ok and type(hb) == 'table' then
    local node = {id = id, version = hb.version, started_at_ms = hb.started_at_ms,
                  listen = hb.listen, redis = hb.redis, paused = hb.paused == true,
                  workers = {}, http = {}, delivery = {}}
    if type(hb.heartbeat_ms) == 'number' then node.heartbeat_age_ms = now - hb.heartbeat_ms end
    local children = type(hb.children) == 'table' and hb.children or {}
    for k = 1, math.min(#children, WORKERS_MAX) do
      local ch = children[k]
      if type(ch) == 'table' and ch.kind == 'worker' then
        local w = {pid = ch.pid, state = ch.state, jobs_done = ch.jobs_done, restarts = ch.restarts}
        if ch.state == 'busy' then w.job, w.job_ms = ch.job, ch.job_ms end
        table.insert(node.workers, w)
      elseif type(ch) == 'table' and (ch.kind == 'http' or ch.kind == 'delivery') then
        table.insert(node[ch.kind], {pid = ch.pid, restarts = ch.restarts})
      end
    end
    table.insert(nodes, node)
  end
end

local ready, delayed = redis.call('LLEN', KEYS[1]), redis.call('ZCARD', KEYS[2])
local dead = redis.call('ZCARD', KEYS[3])
local doc = {
  now_ms = now,
  paused = redis.call('EXISTS', p .. 'paused') == 1,
  queues = {ready = ready, delayed = delayed, processing = processing, dead = dead,
            deliveries = {ready = redis.call('LLEN', p .. 'wh:ready'),
                          delayed = redis.call('ZCARD', p .. 'wh:delayed'),
                          dead = redis.call('ZCARD', p .. 'wh:dead')}},
  jobs = {queued = ready + delayed, processing = processing,
          done = alive(p .. 'recent:done', ARGV[2]),
          failed = alive(p .. 'recent:failed', ARGV[3]), dead = dead},
  nodes = nodes,
}

local fields = {'done', 'failed', 'retried', 'bytes'}
for b = 0, #DURATION_BOUNDS_MS do table.insert(fields, 'd' .. b) end
local series = {minute_ms = {}, done = {}, failed = {}, retried = {}, bytes_fetched = {},
                buckets = {}}
local minute = math.floor(now / 60000)
for m = minute - math.min(tonumber(ARGV[4]), MINUTES_MAX) + 1, minute do
  local v = redis.call('HMGET', p .. 'stats:' .. string.format('%d', m), unpack(fields))
  table.insert(series.minute_ms, m * 60000)
  table.insert(series.done, tonumber(v[1]) or 0)
  table.insert(series.failed, tonumber(v[2]) or 0)
  table.insert(series.retried, tonumber(v[3]) or 0)
  table.insert(series.bytes_fetched, tonumber(v[4]) or 0)
  local counts = {}
  for b = 5, #fields do table.insert(counts, tonumber(v[b]) or 0) end
  table.insert(series.buckets, counts)
end
doc.series = series
return cjson.encode(doc)
