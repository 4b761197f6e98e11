-- take: KEYS ready proc workers; ARGV token wid prefix
-- -> {id, fields...} started | {id} skipped (start_job: no longer queued) | nil (nothing ready)
-- The next ready job moved to the worker's proc list and started in one round
-- trip: what a worker does while there is work (jobqueue_take). With nothing
-- ready the worker blocks in BLMOVE instead and runs start.lua on what it gets.
local id = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
if not id then return nil end
local fields = start_job('{' .. ARGV[3] .. '}:job:' .. id, KEYS[2], KEYS[3], id, ARGV[1], ARGV[2])
if not fields then return {id} end
table.insert(fields, 1, id)
return fields
