-- admin_list: KEYS index; ARGV prefix state limit cursor_a cursor_b
-- -> {next_cursor ('' on the last page), {id, state, created, started,
--     finished, attempts, src, url, err_code, err_msg}, ...}
-- One page of GET /v1/admin/jobs (docs/API.md §13.2), newest first. index and
-- the cursor ('' '' for the first page) by state:
--   queued:     {p}:ready from its newest (right) end, then {p}:delayed by due
--               time, latest first; cursor "<0 ready | 1 delayed>:<offset>";
--   processing: {p}:nodes: every worker's proc list, latest started first;
--               cursor "0:<offset>";
--   done, failed, dead: {p}:recent:done, {p}:recent:failed, {p}:dead by
--               finish time; cursor "<score>:<entries of that score already
--               listed>". An entry whose job has expired (or left that state)
--               is dropped from the index.
-- Bounded: at most EXAMINE_MAX entries are looked at per page (a page may then
-- be short, with a cursor to go on).
local EXAMINE_MAX, NODES_MAX, WORKERS_MAX = 1000, 256, 1024
local p = '{' .. ARGV[1] .. '}:'
local state, limit = ARGV[2], tonumber(ARGV[3])
local first = ARGV[4] == ''
local out, examined = {''}, 0
local FIELDS = {'state', 'created', 'started', 'finished', 'attempts', 'src', 'url', 'err_code',
                'err_msg'}

-- The listed fields of job id (state false when the job is gone).
local function fields(id)
  local v = redis.call('HMGET', p .. 'job:' .. id, unpack(FIELDS))
  table.insert(v, 1, id)
  return v
end
local function full() return #out - 1 >= limit end

if state == 'done' or state == 'failed' or state == 'dead' then
  local want = state == 'dead' and 'failed' or state
  local score, skip = '+inf', 0
  if not first then score, skip = ARGV[4], tonumber(ARGV[5]) end
  while not full() and examined < EXAMINE_MAX do
    local batch = redis.call('ZREVRANGEBYSCORE', KEYS[1], score, '-inf', 'WITHSCORES', 'LIMIT',
                             skip, limit)
    if #batch == 0 then break end
    for i = 1, #batch, 2 do
      local id, s = batch[i], batch[i + 1]
      examined = examined + 1
      local f = fields(id)
      if f[2] == want then
        table.insert(out, f)
        if s == score then skip = skip + 1 else score, skip = s, 1 end
      else
        redis.call('ZREM', KEYS[1], id) -- gone: what follows keeps its place
        if s ~= score then score, skip = s, 0 end
      end
      if full() then break end
    end
  end
  if score ~= '+inf' and
      #redis.call('ZREVRANGEBYSCORE', KEYS[1], score, '-inf', 'LIMIT', skip, 1) > 0 then
    out[1] = score .. ':' .. skip
  end
elseif state == 'queued' then
  local ready, delayed = KEYS[1], p .. 'delayed'
  local part, off = 0, 0
  if not first then part, off = tonumber(ARGV[4]), tonumber(ARGV[5]) end
  while not full() and examined < EXAMINE_MAX do
    local batch = {}
    if part == 0 then
      local got = redis.call('LRANGE', ready, -(off + limit), -(off + 1))
      for i = #got, 1, -1 do table.insert(batch, got[i]) end
    else
      batch = redis.call('ZREVRANGE', delayed, off, off + limit - 1)
    end
    if #batch == 0 then
      if part == 1 then break end
      part, off = 1, 0
    end
    for _, id in ipairs(batch) do
      off, examined = off + 1, examined + 1
      local f = fields(id)
      if f[2] == 'queued' then table.insert(out, f) end
      if full() then break end
    end
  end
  local more = (part == 0 and (redis.call('LLEN', ready) > off or
                               redis.call('ZCARD', delayed) > 0)) or
               (part == 1 and redis.call('ZCARD', delayed) > off)
  if more then out[1] = part .. ':' .. off end
elseif state == 'processing' then
  local jobs = {}
  local members = redis.call('SMEMBERS', KEYS[1])
  for i = 1, math.min(#members, NODES_MAX) do
    local wids = redis.call('SMEMBERS', p .. 'workers:' .. members[i])
    for k = 1, math.min(#wids, WORKERS_MAX) do
      for _, id in ipairs(redis.call('LRANGE', p .. 'proc:' .. wids[k], 0, 9)) do
        if #jobs < EXAMINE_MAX then
          local f = fields(id)
          if f[2] then table.insert(jobs, f) end
        end
      end
    end
  end
  table.sort(jobs, function(a, b)
    local x, y = tonumber(a[4]) or 0, tonumber(b[4]) or 0
    if x ~= y then return x > y end
    return a[1] > b[1]
  end)
  local off = first and 0 or tonumber(ARGV[5])
  for i = off + 1, math.min(#jobs, off + limit) do table.insert(out, jobs[i]) end
  if #jobs > off + limit then out[1] = '0:' .. (off + limit) end
end
return out
