-- End a request: free its lease and hold; apply its committed charge (at ledger version v)
-- to the cached balance and key spend unless the snapshot they were seeded from included it.
--
-- A reservation returned unused (KEYS[7] and ARGV[6] given) also gives its rate allowance
-- back: the key's TAT moves back one interval, never before now, as if it had not been
-- taken; only once (the lease it frees is the proof that it was still out).
--
-- KEYS: 1 hold, 2 concurrency leases, 3 account funds, 4 account holds, 5 recent charges,
--       6 key spend of the month, [7 rate TAT]
-- ARGV: 1 request id, 2 charge, 3 version (0: none), 4 key id, 5 month, [6 interval ms]
local h = redis.call('HMGET', KEYS[1], 'amount')
local freed = redis.call('ZREM', KEYS[2], ARGV[1])
if freed == 1 and KEYS[7] then
  local tat = tonumber(redis.call('GET', KEYS[7]) or '0')
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if tat > now then
    redis.call('SET', KEYS[7], math.max(now, tat - tonumber(ARGV[6])), 'KEEPTTL')
  end
end
if h[1] then
  local amount = tonumber(h[1])
  if redis.call('EXISTS', KEYS[3]) == 1 then
    redis.call('HINCRBY', KEYS[3], 'pending', -amount)
  end
  if redis.call('EXISTS', KEYS[6]) == 1 then
    redis.call('HINCRBY', KEYS[6], 'pending', -amount)
  end
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
end
local charge = tonumber(ARGV[2])
local version = tonumber(ARGV[3])
if charge > 0 and version > 0 then
  redis.call('LPUSH', KEYS[5], version .. ':' .. charge .. ':' .. ARGV[4] .. ':' .. ARGV[5])
  redis.call('LTRIM', KEYS[5], 0, 999)
  redis.call('PEXPIRE', KEYS[5], 120000)
  local seeded = redis.call('HGET', KEYS[3], 'version')
  if seeded and version > tonumber(seeded) then
    redis.call('HINCRBY', KEYS[3], 'balance', -charge)
  end
  local spend_seeded = redis.call('HGET', KEYS[6], 'version')
  if spend_seeded and version > tonumber(spend_seeded) then
    redis.call('HINCRBY', KEYS[6], 'spent', charge)
  end
end
return 1
