-- Set a key's spend this month from a store-of-record snapshot at account version v, plus
-- the key's charges applied here since v.  The spend hash lives a little past the month.
--
-- KEYS: 1 key spend of the month, 2 recent charges of the account, 3 account holds
-- ARGV: 1 spent, 2 version, 3 key id, 4 month, 5 key prefix
local version = tonumber(ARGV[2])
local current = redis.call('HGET', KEYS[1], 'version')
if current and tonumber(current) >= version then
  return 0
end
local spent = tonumber(ARGV[1])
for _, entry in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  local v, amount, key, month = string.match(entry, '^(%d+):(%d+):([^:]+):(%d+)$')
  if tonumber(v) > version and key == ARGV[3] and month == ARGV[4] then
    spent = spent + tonumber(amount)
  end
end
if current then
  redis.call('HSET', KEYS[1], 'spent', spent, 'version', version)
  return 1
end
local pending = 0
for _, rid in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  local h = redis.call('HMGET', ARGV[5] .. 'hold:' .. rid, 'amount', 'key', 'month')
  if h[1] and h[2] == ARGV[3] and h[3] == ARGV[4] then
    pending = pending + tonumber(h[1])
  end
end
redis.call('HSET', KEYS[1], 'spent', spent, 'version', version, 'pending', pending)
redis.call('PEXPIRE', KEYS[1], 40 * 24 * 3600 * 1000)
return 1
