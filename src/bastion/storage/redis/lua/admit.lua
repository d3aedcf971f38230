-- Admit one request atomically, on Redis's own clock: GCRA rate limit, concurrency lease,
-- monthly spend cap and credit hold, all or nothing.  A refused request changes nothing.
--
-- KEYS: 1 rate TAT, 2 concurrency leases (zset), 3 account funds (hash), 4 key spend of the
--       month (hash), 5 hold (hash), 6 account holds (zset), 7 epoch
-- ARGV: 1 interval ms, 2 burst, 3 concurrency, 4 hold, 5 spend cap (-1: none), 6 lease ms,
--       7 request id, 8 key id, 9 account id, 10 month, 11 key prefix,
--       12 reserve (1: a replica's reservation for the key's next request)
-- Returns {outcome, retry_ms, remaining, reset_ms, available, epoch}
--
-- A reservation is an admission like any other, taken only where its neighbours would never
-- miss it: for a key allowed at least 60 requests a minute and 10 at a time, with half of
-- its burst and half of its slots still free after it, and 64 times its hold of credit and
-- of spend-cap headroom left after it.  Otherwise it is 'declined' and changes nothing.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = redis.call('GET', KEYS[7])
if not epoch then
  return {'no_epoch', 0, 0, 0, 0, ''}
end
if redis.call('EXISTS', KEYS[7] .. ':recovering') == 1 then
  return {'recovering', 0, 0, 0, 0, epoch}
end

local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local hold = tonumber(ARGV[4])
local cap = tonumber(ARGV[5])
local prefix = ARGV[11]

-- Expired leases and holds belong to requests whose replica died: let them go.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local stale = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now, 'LIMIT', 0, 100)
for _, rid in ipairs(stale) do
  local h = redis.call('HMGET', prefix .. 'hold:' .. rid, 'amount', 'key', 'month')
  if h[1] then
    local amount = tonumber(h[1])
    if redis.call('EXISTS', KEYS[3]) == 1 then
      redis.call('HINCRBY', KEYS[3], 'pending', -amount)
    end
    local spend = prefix .. 'spend:' .. h[2] .. ':' .. h[3]
    if redis.call('EXISTS', spend) == 1 then
      redis.call('HINCRBY', spend, 'pending', -amount)
    end
    redis.call('DEL', prefix .. 'hold:' .. rid)
    redis.call('ZREM', prefix .. 'cc:' .. h[2], rid)
  end
  redis.call('ZREM', KEYS[6], rid)
end

-- GCRA, the same arithmetic as bastion.core.limits.gcra
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
local limited = now < allow_at
local remaining = 0
local reset = tat - now
if not limited then
  remaining = math.min(burst, math.floor((now - allow_at) / interval))
  reset = new_tat - now
end

local funds = nil
if hold > 0 then
  funds = redis.call('HMGET', KEYS[3], 'balance', 'pending')
  if not funds[1] then
    return {'seed_account', 0, remaining, reset, 0, epoch}
  end
end
local spend = nil
if cap >= 0 and hold > 0 then
  spend = redis.call('HMGET', KEYS[4], 'spent', 'pending')
  if not spend[1] then
    return {'seed_key', 0, remaining, reset, 0, epoch}
  end
end
if limited then
  return {'rate_limited', allow_at - now, 0, reset, 0, epoch}
end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  return {'concurrency', 1000, remaining, reset, 0, epoch}
end
if spend then
  local headroom = cap - tonumber(spend[1]) - tonumber(spend[2] or '0')
  if headroom < hold then
    return {'spend_cap', 0, remaining, reset, math.max(0, headroom), epoch}
  end
end
local available = 0
if funds then
  available = tonumber(funds[1]) - tonumber(funds[2] or '0')
  if available < hold then
    return {'insufficient', 0, remaining, reset, available, epoch}
  end
end
if ARGV[12] == '1' then
  local slots = tonumber(ARGV[3])
  local free_slots = slots - redis.call('ZCARD', KEYS[2]) - 1
  local roomy = burst >= 60 and remaining >= burst / 2
    and slots >= 10 and free_slots >= slots / 2
    and (not funds or available - hold >= 64 * hold)
    and (not spend or cap - tonumber(spend[1]) - tonumber(spend[2] or '0') - hold >= 64 * hold)
  if not roomy then
    return {'declined', 0, remaining, reset, available, epoch}
  end
end

-- Every check passed: take the allowance, the slot and the hold together.
local lease = tonumber(ARGV[6])
redis.call('SET', KEYS[1], new_tat, 'PX', burst * interval + 1000)
redis.call('ZADD', KEYS[2], now + lease, ARGV[7])
redis.call('PEXPIRE', KEYS[2], lease + 60000)
if hold > 0 then
  redis.call('HINCRBY', KEYS[3], 'pending', hold)
  if spend then
    redis.call('HINCRBY', KEYS[4], 'pending', hold)
  end
  redis.call('HSET', KEYS[5], 'amount', hold, 'key', ARGV[8], 'account', ARGV[9],
    'month', ARGV[10])
  redis.call('PEXPIRE', KEYS[5], lease + 60000)
  redis.call('ZADD', KEYS[6], now + lease, ARGV[7])
end
return {'admitted', 0, remaining, reset, available - hold, epoch}
