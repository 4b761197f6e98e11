-- admin_retry: KEYS job ready dead; ARGV id prefix
-- -> {'ok'} | {'missing'} | {'state', state} (not failed) | {'gone'} (an upload
-- whose source was deleted when it failed)
-- A failed job (dead or not) goes back to the end of ready as if new: queued,
-- attempts 0, its error, times, token and timeouts cleared, no ttl, out of
-- the dead set and {p}:recent:failed. Its deliveries are forgotten (fields
-- and records), so that its end makes them again; a record still queued is
-- then dropped by the delivery child.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
if state ~= 'failed' then return {'state', state} end
local id, p = ARGV[1], '{' .. ARGV[2] .. '}:'
if redis.call('HGET', KEYS[1], 'src') == 'upload' and
    redis.call('EXISTS', p .. 'src:' .. id) == 0 and not redis.call('HGET', KEYS[1], 'src_obj') then
  return {'gone'}
end
redis.call('HSET', KEYS[1], 'state', 'queued', 'attempts', '0')
redis.call('HDEL', KEYS[1], 'err_code', 'err_msg', 'retry_at', 'finished', 'started', 'token',
           'timeouts', 'cb_status', 'cb_attempts', 'cb_last_status', 'cb_last_error',
           'mail_status', 'mail_attempts', 'mail_last_status', 'mail_last_error')
redis.call('PERSIST', KEYS[1])
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', p .. 'recent:failed', id)
redis.call('DEL', p .. 'wh:d:cb:' .. id, p .. 'wh:d:mail:' .. id)
redis.call('RPUSH', KEYS[2], id)
publish_changed(ARGV[2], id)
return {'ok'}
