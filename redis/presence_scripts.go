package redis

// The Lua scripts of RedisPresence. Each changes an instance's entry, the
// per-user socket counts and the names in one step, so that two instances
// never see a user half connected. They share presenceNow, which reads the
// clock the tests inject or, without one, Redis's own.

import goredis "github.com/redis/go-redis/v9"

// presenceNow starts each presence script: now_ms turns the clock argument
// into Unix milliseconds, reading the server's clock when it is 0.
const presenceNow = `
local function now_ms(arg)
  local n = tonumber(arg)
  if n and n > 0 then return n end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

// Scripts on the keys of [RedisPresence.scriptKeys]: KEYS[1] instances,
// KEYS[2] the instance's sockets, KEYS[3] socket counts, KEYS[4] names.
var (
	// ARGV: now, TTL ms, instance id, socket id, user id, name. Returns the
	// user's socket count.
	presenceConnectScript = goredis.NewScript(presenceNow + `
local now = now_ms(ARGV[1])
redis.call('ZADD', KEYS[1], 'NX', now + tonumber(ARGV[2]), ARGV[3])
redis.call('HSET', KEYS[4], ARGV[5], ARGV[6])
if redis.call('HSETNX', KEYS[2], ARGV[4], ARGV[5]) == 0 then
  return tonumber(redis.call('HGET', KEYS[3], ARGV[5]) or '0')
end
return redis.call('HINCRBY', KEYS[3], ARGV[5], 1)
`)

	// ARGV: socket id, user id. Returns 1 when it removed the user's last
	// socket.
	presenceDisconnectScript = goredis.NewScript(`
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('HINCRBY', KEYS[3], ARGV[2], -1) > 0 then return 0 end
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('HDEL', KEYS[4], ARGV[2])
return 1
`)

	// ARGV: now, TTL ms, instance id. Renews the instance's expiry and
	// returns {1 when the entry had expired already, the number of sockets
	// recorded}.
	presenceHeartbeatScript = goredis.NewScript(presenceNow + `
local now = now_ms(ARGV[1])
local old = redis.call('ZSCORE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
local lapsed = 0
if old and tonumber(old) < now then lapsed = 1 end
return {lapsed, redis.call('HLEN', KEYS[2])}
`)

	// ARGV: now, TTL ms, instance id, then socket id, user id, name for each
	// socket of the instance. Makes the recorded sockets exactly these and
	// returns {sockets added, sockets removed, then user id, name of each
	// user left without a socket}.
	presenceReconcileScript = goredis.NewScript(presenceNow + `
local now = now_ms(ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
local want = {}
for i = 4, #ARGV, 3 do want[ARGV[i]] = i end
local removed, added = 0, 0
local gone = {}
local have = redis.call('HGETALL', KEYS[2])
for j = 1, #have, 2 do
  local sid, uid = have[j], have[j + 1]
  local i = want[sid]
  if not i or ARGV[i + 1] ~= uid then
    redis.call('HDEL', KEYS[2], sid)
    if redis.call('HINCRBY', KEYS[3], uid, -1) <= 0 then
      if not gone[uid] then gone[uid] = redis.call('HGET', KEYS[4], uid) or uid end
      redis.call('HDEL', KEYS[3], uid)
      redis.call('HDEL', KEYS[4], uid)
    end
    removed = removed + 1
  end
end
for sid, i in pairs(want) do
  if redis.call('HSETNX', KEYS[2], sid, ARGV[i + 1]) == 1 then
    redis.call('HSET', KEYS[4], ARGV[i + 1], ARGV[i + 2])
    redis.call('HINCRBY', KEYS[3], ARGV[i + 1], 1)
    added = added + 1
  end
end
local out = {added, removed}
for uid, name in pairs(gone) do
  if redis.call('HEXISTS', KEYS[3], uid) == 0 then
    out[#out + 1] = uid
    out[#out + 1] = name
  end
end
return out
`)

	// ARGV: now, instance id, batch size. When the instance has expired,
	// removes up to a batch of its sockets and returns {1 when sockets are
	// left, then user id, name of each user left without a socket}; {0}
	// when the instance is gone or alive.
	presenceReapScript = goredis.NewScript(presenceNow + `
local now = now_ms(ARGV[1])
local d = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not d or tonumber(d) >= now then return {0} end
local out = {1}
local fv = redis.call('HRANDFIELD', KEYS[2], tonumber(ARGV[3]), 'WITHVALUES')
for i = 1, #fv, 2 do
  local uid = fv[i + 1]
  redis.call('HDEL', KEYS[2], fv[i])
  if redis.call('HINCRBY', KEYS[3], uid, -1) <= 0 then
    out[#out + 1] = uid
    out[#out + 1] = redis.call('HGET', KEYS[4], uid) or uid
    redis.call('HDEL', KEYS[3], uid)
    redis.call('HDEL', KEYS[4], uid)
  end
end
if redis.call('HLEN', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[2])
  out[1] = 0
end
return out
`)

	// ARGV: instance id. Removes the instance's entry when it has no socket
	// left, and otherwise marks it expired so that the others reap its
	// sockets now. Returns the number of sockets left.
	presenceCloseScript = goredis.NewScript(`
local n = redis.call('HLEN', KEYS[2])
if n == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], 0, ARGV[1])
end
return n
`)
)

// presenceExpiredScript lists the expired instances other than ARGV[2].
// KEYS[1] instances. ARGV: now, instance id.
var presenceExpiredScript = goredis.NewScript(presenceNow + `
local now = now_ms(ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', now))
local out = {}
for _, id in ipairs(ids) do
  if id ~= ARGV[2] then out[#out + 1] = id end
end
return out
`)

// presenceLiveScript lists the instances whose entry has not expired.
// KEYS[1] instances. ARGV: now.
var presenceLiveScript = goredis.NewScript(presenceNow + `
local now = now_ms(ARGV[1])
return redis.call('ZRANGEBYSCORE', KEYS[1], string.format('%.0f', now), '+inf')
`)
