package redis

// historyExpireLua renews the expiry of the stream KEYS[%[1]d] to ARGV[%[2]d]
// milliseconds (history.ttl) after an append; 0 leaves the key without one.
const historyExpireLua = `
if tonumber(ARGV[%[2]d]) > 0 then
  redis.call('PEXPIRE', KEYS[%[1]d], ARGV[%[2]d])
end
`
