-- Name the contents of this Redis.  A replica that finds no epoch asks the store of record
-- whether one was known before: if so Redis lost its data, and admission pauses for the
-- recovery window while every replica re-registers its live requests' leases and holds.
--
-- KEYS: 1 epoch
-- ARGV: 1 new epoch, 2 recovery ms (0: a fresh Redis, no pause)
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  if tonumber(ARGV[2]) > 0 then
    redis.call('SET', KEYS[1] .. ':recovering', '1', 'PX', ARGV[2])
  end
  return ARGV[1]
end
return redis.call('GET', KEYS[1])
