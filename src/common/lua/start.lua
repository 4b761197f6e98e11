-- start: KEYS job proc [workers]; ARGV id token [wid] -> the job's fields | nil (skip it)
-- Runs after BLMOVE ready -> proc, or on the job a lost reply left in proc
-- (start_job in common.lua).
return start_job(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3])
