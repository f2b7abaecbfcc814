//! The Lua scripts: every step that must not be seen half done runs as one script, atomically.
//!
//! They are loaded on every new connection (`crate::link`) and called by their SHA-1 with
//! `EVALSHA`, so that they can be pipelined. Times come from Redis's own clock (`TIME`), so the
//! machines of a fleet never compare their clocks with each other.
//!
//! Delayed messages are members of one sorted set scored by their due time in milliseconds.
//! A member is `<band digit>:<envelope>`: the band (0 high, 1 normal, 2 low) names the stream
//! the message goes to when it is due. Envelopes carry the event id, the attempt count and the
//! publisher's ticket, so two members never collide.

use std::sync::LazyLock;

use redis::Script;

/// Settles a delivered message in one step: checks that `consumer` still owns it, sends the
/// result to the publisher's reply stream, writes the dead letter, re-enqueues the message for
/// its next attempt (at once or through the delayed set), and acknowledges and deletes the
/// message. Returns 1.
///
/// If the consumer does not own the message, nothing happens: the script returns -1 if another
/// consumer owns it (it reclaimed the message after the visibility timeout), 0 if nobody does
/// (it was settled already: by the reclaimer, or by an earlier try of this very call whose
/// answer was lost with the connection).
///
/// KEYS: 1 the message's stream, 2 the reply stream (unused if no ticket), 3 the dead-letter
/// stream, 4 the delayed set, 5 the stream of the next attempt.
/// ARGV: 1 group, 2 consumer, 3 message id, 4 ticket ('' = no reply), 5 result JSON,
/// 6 reply stream time-to-live (ms), 7 dead letter JSON ('' = none), 8 envelope of the next
/// attempt ('' = none), 9 its delay (ms), 10 its band digit.
pub(crate) static SETTLE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local owner = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #owner == 0 then
  return 0
end
if owner[1][2] ~= ARGV[2] then
  return -1
end
if ARGV[4] ~= '' then
  -- pcall: a reply key of another type fails this reply alone, not the settlement (the
  -- address came from whoever wrote the message). Any other error (out of memory) stops the
  -- script before anything is written: the message stays pending and is settled again.
  local sent = redis.pcall('XADD', KEYS[2], '*', 'ticket', ARGV[4], 'result', ARGV[5])
  if type(sent) == 'table' and sent.err ~= nil then
    if string.find(sent.err, 'WRONGTYPE', 1, true) == nil then
      return redis.error_reply(sent.err)
    end
  else
    redis.call('PEXPIRE', KEYS[2], ARGV[6])
  end
end
if ARGV[7] ~= '' then
  redis.call('XADD', KEYS[3], '*', 'v', '1', 'letter', ARGV[7])
end
if ARGV[8] ~= '' then
  local delay = tonumber(ARGV[9])
  if delay > 0 then
    local now = redis.call('TIME')
    local due = now[1] * 1000 + math.floor(now[2] / 1000) + delay
    redis.call('ZADD', KEYS[4], due, ARGV[10] .. ':' .. ARGV[8])
  else
    redis.call('XADD', KEYS[5], '*', 'v', '1', 'envelope', ARGV[8])
  end
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
return 1
",
    )
});

/// Renews a worker's claims: resets the idle time of each message `consumer` still owns
/// (`XCLAIM ... JUSTID`, which does not count as a delivery) and returns the ids it no longer
/// owns. Checking the owner first keeps a worker that stalled past the visibility timeout from
/// stealing back a message another worker reclaimed.
///
/// KEYS: 1 the stream. ARGV: 1 group, 2 consumer, 3.. message ids.
pub(crate) static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local lost = {}
for i = 3, #ARGV do
  local owner = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #owner == 1 and owner[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
",
    )
});

/// Moves up to `ARGV[1]` due members of the delayed set to their streams. Returns the number
/// moved and the milliseconds until the next member is due (-1 if none is waiting).
///
/// KEYS: 1 the delayed set, 2..4 the streams of the high, normal and low bands.
pub(crate) static PROMOTE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = redis.call('TIME')
now = now[1] * 1000 + math.floor(now[2] / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])
for _, member in ipairs(due) do
  local band = tonumber(string.sub(member, 1, 1))
  local envelope = string.sub(member, 3)
  if band == nil or band < 0 or band > 2 or string.sub(member, 2, 2) ~= ':' then
    -- Not a member this crate wrote: to the normal stream as it is, where the worker that
    -- takes it cannot read it and dead-letters it, saying why. Left here, it would stop every
    -- promotion.
    band = 1
    envelope = member
  end
  redis.call('XADD', KEYS[2 + band], '*', 'v', '1', 'envelope', envelope)
  redis.call('ZREM', KEYS[1], member)
end
local wait = -1
local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #next == 2 then
  wait = math.max(0, tonumber(next[2]) - now)
end
return {#due, wait}
",
    )
});

/// Takes up to `ARGV[3]` new messages for consumer `ARGV[2]` of group `ARGV[1]` from the band
/// streams, high first: a lower band only when the higher ones have no more. Returns
/// `{band index, id, fields}` for each, in one round trip.
///
/// KEYS: 1..3 the streams of the high, normal and low bands.
pub(crate) static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local want = tonumber(ARGV[3])
local taken = {}
for band = 1, #KEYS do
  if want <= 0 then
    break
  end
  local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', want, 'STREAMS', KEYS[band], '>')
  if reply then
    for _, entry in ipairs(reply[1][2]) do
      table.insert(taken, {band - 1, entry[1], entry[2]})
    end
    want = want - #reply[1][2]
  end
end
return taken
",
    )
});

/// Adds a member to the delayed set, due `ARGV[1]` milliseconds from now by Redis's clock.
///
/// KEYS: 1 the delayed set. ARGV: 1 delay (ms), 2 member.
pub(crate) static DELAY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = redis.call('TIME')
local due = now[1] * 1000 + math.floor(now[2] / 1000) + tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], due, ARGV[2])
return 1
",
    )
});

/// Moves a dead letter back to a stream as a new message; returns 0 if the letter is gone
/// (already re-published, or deleted).
///
/// KEYS: 1 the dead-letter stream, 2 the target stream. ARGV: 1 letter id, 2 envelope.
pub(crate) static REVIVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('XADD', KEYS[2], '*', 'v', '1', 'envelope', ARGV[2])
return 1
",
    )
});

/// Every script, for loading on a new connection.
pub(crate) fn all() -> [&'static Script; 6] {
    [&SETTLE, &RENEW, &PROMOTE, &TAKE, &DELAY, &REVIVE]
}

/// Starts an `EVALSHA` command for `script`; add the key count, keys and arguments.
pub(crate) fn call(script: &Script) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash());
    cmd
}
