-- Set an account's posted balance from a store-of-record snapshot at ledger version v,
-- minus the charges applied here since v (a snapshot read before a commit but seeded after
-- it must not resurrect that charge).  An existing, newer seed wins.
--
-- KEYS: 1 account funds, 2 recent charges, 3 account holds
-- ARGV: 1 balance, 2 version, 3 key prefix
local version = tonumber(ARGV[2])
local current = redis.call('HGET', KEYS[1], 'version')
if current and tonumber(current) >= version then
  return 0
end
local balance = tonumber(ARGV[1])
for _, entry in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  local v, amount = string.match(entry, '^(%d+):(%d+):')
  if tonumber(v) > version then
    balance = balance - tonumber(amount)
  end
end
if current then
  redis.call('HSET', KEYS[1], 'balance', balance, 'version', version)
  return 1
end
local pending = 0
for _, rid in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  local amount = redis.call('HGET', ARGV[3] .. 'hold:' .. rid, 'amount')
  if amount then
    pending = pending + tonumber(amount)
  end
end
redis.call('HSET', KEYS[1], 'balance', balance, 'version', version, 'pending', pending)
return 1
