-- Extend the leases and holds of this replica's live requests (its heartbeat); re-create
-- them if Redis lost them (restarted empty).  A replica that dies stops refreshing, and
-- its leases and holds expire.
--
-- ARGV: 1 key prefix, 2 lease ms, then groups of 5: request id, key id, account id, hold, month
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix = ARGV[1]
local lease = tonumber(ARGV[2])
local restored = 0
for i = 3, #ARGV, 5 do
  local rid, key, account, hold, month = ARGV[i], ARGV[i + 1], ARGV[i + 2],
    tonumber(ARGV[i + 3]), ARGV[i + 4]
  local cc = prefix .. 'cc:' .. key
  redis.call('ZADD', cc, now + lease, rid)
  redis.call('PEXPIRE', cc, lease + 60000)
  if hold > 0 then
    local holdkey = prefix .. 'hold:' .. rid
    if redis.call('EXISTS', holdkey) == 0 then
      restored = restored + 1
      redis.call('HSET', holdkey, 'amount', hold, 'key', key, 'account', account, 'month', month)
      local funds = prefix .. 'acct:' .. account
      if redis.call('EXISTS', funds) == 1 then
        redis.call('HINCRBY', funds, 'pending', hold)
      end
      local spend = prefix .. 'spend:' .. key .. ':' .. month
      if redis.call('EXISTS', spend) == 1 then
        redis.call('HINCRBY', spend, 'pending', hold)
      end
    end
    redis.call('PEXPIRE', holdkey, lease + 60000)
    redis.call('ZADD', prefix .. 'holds:' .. account, now + lease, rid)
  end
end
return restored
