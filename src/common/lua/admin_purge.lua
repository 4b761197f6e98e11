-- admin_purge: KEYS dead; ARGV prefix limit -> how many ids left the dead set
-- Deletes each job of the dead set (hash, result, source, its entry in
-- {p}:recent:failed), at most limit of them (the set is trimmed to that
-- size anyway), and tells every node's cache. An entry whose job is no
-- longer failed (it cannot be, retry takes it out) only leaves the set.
local p = '{' .. ARGV[1] .. '}:'
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
for _, id in ipairs(ids) do
  local state = redis.call('HGET', p .. 'job:' .. id, 'state')
  if state == 'failed' or not state then
    drop_fields(ARGV[1], p .. 'job:' .. id, now_ms(), 'src_obj', 'res_obj')
    redis.call('DEL', p .. 'job:' .. id, p .. 'res:' .. id, p .. 'src:' .. id)
    redis.call('ZREM', p .. 'recent:failed', id)
    if state then publish_changed(ARGV[1], id) end
  end
  redis.call('ZREM', KEYS[1], id)
end
return #ids
