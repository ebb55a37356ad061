"""The sequence-gap guard, shared by every consumer of a group through Redis.

Each consumer sees only its share of the stream, so a per-process guard would see gaps everywhere. The
guard's state lives in Redis and one Lua script per batch and symbol updates it atomically. Redelivered
entries (recovered after a crash or a lost connection) go through it too, but a seq it has already seen is
then not a duplicate: it was guarded at its first delivery. Definitions match
``shadow_pipeline.domain.market.sequence``:

- gap: seqs skipped when a higher seq arrived (a counter); ``missing`` is what is still missing (a gauge);
- duplicate: a seq that had already arrived;
- out of order: the first arrival of a seq lower than the highest seen (it fills an earlier gap).

The first seq a guard ever sees for a symbol is its baseline: a group that joins mid-stream counts no gap, and
a seq below the baseline that arrives later is out of order but was never missing.

State per symbol, whatever the seqs' values (0 .. 2**63-1): a hash (``high``, ``base``, ``missing``, ``forgotten``)
and the *holes*, the stretches of seqs below ``high`` that have not arrived, one sorted-set member ``<lo>:<hi>``
each: the seqs strictly between two that did arrive, as 19-digit zero-padded decimals (all scores 0, so that the
members' lexicographic order is numeric order and ZREVRANGEBYLEX finds the hole a seq falls in). Everything below
the baseline is one hole from the start (its ``lo`` is ``-`` * 19, seq -1). A seq above ``high`` opens at most one
hole (a jump of 2**40 is one member, and a gap of 2**40); a late arrival splits the hole it falls in; a seq that is
neither above ``high`` nor in a hole has arrived before. Memory is therefore O(open holes), not O(seq values), and
at most ``max_holes`` members per symbol: when a batch leaves more, the lowest holes (the oldest seqs) are given up
(``forgotten`` counts them); their seqs stay in ``missing``, and one of them arriving after all is then counted as
a duplicate (it can no longer be told from one). Lost seqs never come back, so a lossy feed's holes pile up: the cap
is what bounds its memory, and it changes no count as long as nothing older than the last ``max_holes`` holes comes.

The batch goes to the script as runs of consecutive seqs (``<first>-<last>``), so a healthy feed's batch costs a
few steps, not one per tick. Lua numbers are doubles, exact only up to 2**53, so the script compares seqs as padded
strings and does arithmetic on pairs (seq // 10**9, seq % 10**9), both exact; counts go back as decimal strings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import redis

from shadow_pipeline.redis_io.keys import guard_group_keys, guard_keys

_SCRIPT = """
-- KEYS: the group's checked batches (sorted set by first id ms), the group's symbols with unconfirmed holes, the
-- stream, then per symbol its 5 keys (guard below). ARGV: redelivered ('1'), max holes, the batch's first and last
-- entry ids ('' for none: nothing is held elsewhere), the group, then per symbol its name and its runs.
local B = 1000000000
local Z = {}
for i = 0, 19 do Z[i] = string.rep('0', i) end
local BELOW = '-------------------'  -- the lower bound of the hole under the baseline: seq -1 (sorts before '0')
local function pad(t) return Z[19 - #t] .. t end  -- a canonical decimal as 19 digits: string order = numeric order
local function parse(t)  -- a decimal, padded or not, as the exact pair (seq // 10**9, seq % 10**9)
  if t == BELOW then return 0, -1 end
  local n = #t
  if n <= 9 then return 0, tonumber(t) end
  return tonumber(string.sub(t, 1, n - 9)), tonumber(string.sub(t, n - 8))
end
local function show(h, l)
  if h > 0 then return string.format('%d%09d', h, l) end
  return string.format('%d', l)
end
local function inc(h, l) if l == B - 1 then return h + 1, 0 end return h, l + 1 end
local function dec(h, l) if l == 0 then return h - 1, B - 1 end return h, l - 1 end
local function add(ah, al, bh, bl)
  local h, l = ah + bh, al + bl
  if l >= B then return h + 1, l - B end
  return h, l
end
local function sub(ah, al, bh, bl)
  local h, l = ah - bh, al - bl
  if l < 0 then return h - 1, l + B end
  return h, l
end
local function lt(ah, al, bh, bl) return ah < bh or (ah == bh and al < bl) end
local function count(ah, al, bh, bl) return (bh - ah) * B + (bl - al) + 1 end  -- of a .. b, a few million at most

-- Entry ids '<ms>-<seq>', canonical decimals as Redis writes them: compared exactly, by length then text.
local function id_parts(id)
  local d = string.find(id, '-', 1, true)
  return string.sub(id, 1, d - 1), string.sub(id, d + 1)
end
local function dec_lt(a, b) if #a ~= #b then return #a < #b end return a < b end
local function id_lt(a, b)
  local am, as = id_parts(a)
  local bm, bs = id_parts(b)
  if am ~= bm then return dec_lt(am, bm) end
  return dec_lt(as, bs)
end
local function id_ms(id) return tonumber((id_parts(id))) end

-- A hole is '<lo>:<hi>' (confirmed) or '<lo>:<hi>:<opener>' (unconfirmed): the first entry id of the batch that
-- opened it, while an earlier batch of the group was still unchecked. Its seqs count as a gap once every entry
-- before that id is checked (confirm below); an earlier batch that brings them first fills it unseen.
local function hole_parts(hole)
  return string.sub(hole, 1, 19), string.sub(hole, 21, 39), #hole > 39 and string.sub(hole, 41) or nil
end

local redelivery = ARGV[1] == '1'
local first_id, last_id = ARGV[3] ~= '' and ARGV[3] or nil, ARGV[4] ~= '' and ARGV[4] or nil
if first_id then redis.call('ZADD', KEYS[1], id_ms(first_id), first_id .. ' ' .. last_id) end

-- The first entry the group holds unchecked (delivered, not acked, in no checked batch); nil when none. Entries
-- are delivered in id order, so every entry before it was checked or acked: a hole opened after it is a gap.
-- First drops the checked batches wholly before the oldest pending entry (all acked since).
local function find_unchecked()
  local reply = redis.pcall('XPENDING', KEYS[3], ARGV[5], '-', '+', 1)
  if reply.err then return nil end  -- no such group: nobody holds anything
  local p = reply[1] and reply[1][1]
  if not p then redis.call('DEL', KEYS[1]); return nil end
  for _, batch in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', id_ms(p))) do
    local sep = string.find(batch, ' ', 1, true)
    if id_lt(string.sub(batch, sep + 1), p) then redis.call('ZREM', KEYS[1], batch) end
  end
  for _ = 1, 1000 do
    local upto  -- the end of the checked batches that hold p
    for _, batch in ipairs(redis.call('ZREVRANGEBYSCORE', KEYS[1], id_ms(p), '-inf', 'LIMIT', 0, 64)) do
      local sep = string.find(batch, ' ', 1, true)
      local f, l = string.sub(batch, 1, sep - 1), string.sub(batch, sep + 1)
      if not id_lt(p, f) and not id_lt(l, p) and (not upto or id_lt(upto, l)) then upto = l end
    end
    if not upto then return p end
    local after = redis.call('XPENDING', KEYS[3], ARGV[5], '(' .. upto, '+', 1)
    p = after[1] and after[1][1]
    if not p then return nil end
  end
  return p  -- past 1000 batches: wait for a later call rather than walk on
end
local unchecked, looked = nil, false
local function oldest_unchecked()
  if not looked then unchecked, looked = find_unchecked(), true end
  return unchecked
end

-- One symbol: K = its state hash, holes, the first version's seen-bitmap, unconfirmed holes (by opener id ms), and
-- the seqs that came late below a baseline not final yet.
local function guard(K, symbol, runs)
  local state = redis.call('HMGET', K[1], 'high', 'base', 'missing', 'forgotten')
  local high, base  -- decimal strings, as the producer wrote them
  local mh, ml, forgotten = 0, 0, 0
  if state[1] and not state[2] then
    -- The bitmap guard's state: go on from its high and missing, give up what is below high, free the bitmap.
    if tonumber(state[1]) >= 0 then
      high, base = state[1], state[1]
      local m = math.max(tonumber(state[3] or '0'), 0)
      mh, ml = math.floor(m / B), m % B
    end
    redis.call('UNLINK', K[3])
  elseif state[1] then
    high, base = state[1], state[2]
    mh, ml = parse(state[3])
    forgotten = tonumber(state[4])
  end
  local ph, pb = high and pad(high), base and pad(base)
  local hh, hl, bh, bl
  if high then hh, hl = parse(high); bh, bl = parse(base) end

  local gh, gl, dups, late, filled = 0, 0, 0, 0, 0
  local opened, pending = {}, {}  -- new holes (and the unconfirmed among them), added before the next lookup
  local function flush()
    if #opened > 0 then
      redis.call('ZADD', K[2], unpack(opened))
      opened = {}
    end
    if #pending > 0 then
      redis.call('ZADD', K[4], unpack(pending))
      pending = {}
    end
  end
  local function put(member, opener)
    redis.call('ZADD', K[2], 0, member)
    if opener then redis.call('ZADD', K[4], id_ms(opener), member) end
  end
  local function as_gap(lo, hi)  -- the hi - 1 - lo seqs of a hole
    local ah, al = dec(parse(hi))
    gh, gl = add(gh, gl, sub(ah, al, parse(lo)))
  end
  -- An earlier batch, checked later, brings the stream's first seqs: the baseline goes down to (h, l), and the seqs
  -- that came late below the old one (K[5], ranges 'a:b' of arrived seqs) and are now above it were skipped.
  local function lower_base(h, l)
    base, bh, bl = show(h, l), h, l
    pb = pad(base)
    for _, range in ipairs(redis.call('ZRANGE', K[5], 0, -1)) do
      local a, b = string.sub(range, 1, 19), string.sub(range, 21)
      if b >= pb then
        local ah, al = parse(a)
        if a < pb then ah, al = h, l end
        local n = count(ah, al, parse(b))
        gh, gl = add(gh, gl, 0, n)
        filled = filled + n
        redis.call('ZREM', K[5], range)
        if a < pb then redis.call('ZADD', K[5], 0, a .. ':' .. pad(show(dec(h, l)))) end
      end
    end
  end

  -- Seqs x .. y (padded px, py), all at or below high, arrive: the ones in holes are late, the rest duplicates.
  -- A hole holds the seqs strictly between lo and hi (19-digit seqs that did arrive, or BELOW).
  local function arrive(px, py)
    local holes = redis.call('ZREVRANGEBYLEX', K[2], '(' .. px .. ':', '-', 'LIMIT', 0, 1)
    if holes[1] and string.sub(holes[1], 21, 39) <= px then holes = {} end
    if px ~= py then
      for _, hole in ipairs(redis.call('ZRANGEBYLEX', K[2], '[' .. px, '(' .. py .. ':')) do
        holes[#holes + 1] = hole
      end
    end
    local xh, xl = parse(px)
    local yh, yl = xh, xl
    if px ~= py then yh, yl = parse(py) end
    local came, unseen = 0, 0
    for _, hole in ipairs(holes) do
      local lo, hi, opener = hole_parts(hole)
      local uh, ul = inc(parse(lo))  -- the seqs that come, u .. v: max(lo + 1, x) .. min(hi - 1, y)
      local vh, vl = dec(parse(hi))
      local split_low, split_high = lt(uh, ul, xh, xl), lt(yh, yl, vh, vl)
      if split_low then uh, ul = xh, xl end
      if split_high then vh, vl = yh, yl end
      local n = count(uh, ul, vh, vl)
      local below = opener  -- the opener of what stays below the seqs that come
      came = came + n
      if opener then
        -- Not in missing yet. From a batch wholly before the opener: they came in the stream's order, no gap
        -- and not late. Otherwise the opener came first in the stream: skipped then (a gap now), and late.
        if last_id and id_lt(last_id, opener) then
          unseen = unseen + n
          below = first_id  -- in the stream's order, this batch is what skipped them
          if lo == BELOW and lt(uh, ul, bh, bl) then lower_base(uh, ul) end  -- the group's first seqs
        elseif hi > pb then
          gh, gl = add(gh, gl, 0, n)
          filled = filled + n
        else  -- below the baseline for now: late, never missing; skipped too if an earlier batch lowers it
          redis.call('ZADD', K[5], 0, pad(show(uh, ul)) .. ':' .. pad(show(vh, vl)))
        end
        redis.call('ZREM', K[4], hole)
      elseif not lt(vh, vl, bh, bl) then
        if lt(uh, ul, bh, bl) then uh, ul = bh, bl end
        filled = filled + count(uh, ul, vh, vl)
      end
      redis.call('ZREM', K[2], hole)
      if split_low then put(lo .. ':' .. px .. (below and (':' .. below) or ''), below) end
      if split_high then put(py .. ':' .. hi .. (opener and (':' .. opener) or ''), opener) end
    end
    late = late + came - unseen
    if not redelivery then dups = dups + count(xh, xl, yh, yl) - came end
  end

  -- Each token is a run of consecutive seqs, '<first>' or '<first>-<last>', in arrival order.
  for first, last in string.gmatch(runs, '(%d+)%-?(%d*)') do
    local single = last == ''
    if single then last = first end
    local pf = pad(first)
    local pl = single and pf or pad(last)
    if not high then
      high, base, ph, pb = last, first, pl, pf
      hh, hl = parse(last)
      bh, bl = parse(first)
      if bh > 0 or bl > 0 then
        opened[#opened + 1] = 0
        opened[#opened + 1] = BELOW .. ':' .. pf .. (first_id and (':' .. first_id) or '')
        if first_id then
          pending[#pending + 1] = id_ms(first_id)
          pending[#pending + 1] = opened[#opened]
        end
      end
    elseif pf > ph then
      local fh, fl = parse(first)
      local nh, nl = inc(hh, hl)
      if fh ~= nh or fl ~= nl then
        opened[#opened + 1] = 0
        if first_id then  -- confirmed (counted) below, once every entry before the batch is checked
          opened[#opened + 1] = ph .. ':' .. pf .. ':' .. first_id
          pending[#pending + 1] = id_ms(first_id)
          pending[#pending + 1] = opened[#opened]
        else
          opened[#opened + 1] = ph .. ':' .. pf
          gh, gl = add(gh, gl, sub(fh, fl, nh, nl))
        end
        if #opened >= 2000 then flush() end
      end
      high, ph = last, pl
      if single then hh, hl = fh, fl else hh, hl = parse(last) end
    else
      flush()
      if pl > ph then
        arrive(pf, ph)
        high, ph = last, pl
        hh, hl = parse(last)
      else
        arrive(pf, pl)
      end
    end
  end
  flush()

  if redis.call('ZCARD', K[4]) > 0 then
    local before = oldest_unchecked()
    local holes
    if before then
      holes = redis.call('ZRANGEBYSCORE', K[4], '-inf', id_ms(before))
    else
      holes = redis.call('ZRANGE', K[4], 0, -1)
    end
    for _, hole in ipairs(holes) do
      local lo, hi, opener = hole_parts(hole)
      if not before or id_lt(opener, before) then
        if hi > pb then as_gap(lo, hi) end  -- below the baseline is never missing
        redis.call('ZREM', K[4], hole)
        redis.call('ZREM', K[2], hole)
        redis.call('ZADD', K[2], 0, lo .. ':' .. hi)
      end
    end
  end
  if not high then return {'0', 0, 0, '0'} end

  -- Past max holes, give up the lowest (oldest) ones: their seqs stay in missing; one arriving after all is then
  -- taken for a duplicate. forgotten counts the holes given up (the one below the baseline is not counted). An
  -- unconfirmed one is counted as a gap first: it can no longer be filled unseen.
  local over = redis.call('ZCARD', K[2]) - tonumber(ARGV[2])
  if over > 0 then
    local popped = redis.call('ZPOPMIN', K[2], over)
    for i = 1, #popped, 2 do
      local lo, hi, opener = hole_parts(popped[i])
      if opener then
        if hi > pb then as_gap(lo, hi) end
        redis.call('ZREM', K[4], popped[i])
      end
      if hi > pb then forgotten = forgotten + 1 end
    end
  end
  if redis.call('ZCARD', K[4]) > 0 then
    redis.call('SADD', KEYS[2], symbol)
  else  -- the baseline is final
    redis.call('SREM', KEYS[2], symbol)
    redis.call('DEL', K[5])
  end

  -- missing is at most 2**63, filled at most the batch's length: the pairs stay exact.
  mh, ml = add(mh, ml, gh, gl)
  mh, ml = sub(mh, ml, 0, filled)
  local missing = show(mh, ml)
  redis.call('HSET', K[1], 'high', high, 'base', base, 'missing', missing, 'forgotten', forgotten)
  return {show(gh, gl), dups, late, missing}
end

local found = {}
for i = 6, #ARGV, 2 do
  local k = 4 + (i - 6) / 2 * 5
  local counts = guard({KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]}, ARGV[i], ARGV[i + 1])
  for _, value in ipairs(counts) do found[#found + 1] = value end
end
if first_id and not looked then oldest_unchecked() end  -- drops the acked batches
return found
"""
# KEYS: a symbol's state hash. ARGV: a seq (a canonical decimal). Raises ``high`` to it when the guard has state
# (of the current version) below it, leaving holes and counts as they are; 1 when it did. Decimals compare by
# length then text, once leading zeros are gone (a producer may write them).
_ADVANCE = """
local high, base = unpack(redis.call('HMGET', KEYS[1], 'high', 'base'))
if not high or not base then return 0 end
local h = string.gsub(high, '^0+', '')
if #h > #ARGV[1] or (#h == #ARGV[1] and h >= ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'high', ARGV[1])
return 1
"""
MAX_SEQ = 2**63 - 1
DEFAULT_MAX_HOLES = 10_000  # per symbol; a hole is one sorted-set member of 39 bytes
_LONGEST_RUN = 1 << 20  # the script's counts of one run stay far below 10**9


def _runs(seqs: np.ndarray) -> str:
    """The batch as runs of consecutive seqs, ``<first>`` or ``<first>-<last>``, comma-joined in one
    argument (packing thousands of separate arguments costs more than the script). A healthy feed's batch is a
    few runs, so the script's work per batch hardly grows with its length."""
    steps = np.flatnonzero((np.diff(seqs) != 1) | (np.arange(1, len(seqs)) % _LONGEST_RUN == 0)) + 1
    starts = np.concatenate(([0], steps))
    ends = np.concatenate((steps, [len(seqs)])) - 1
    firsts, lasts = seqs[starts].tolist(), seqs[ends].tolist()
    return ",".join(f"{a}-{z}" if z != a else str(a) for a, z in zip(firsts, lasts, strict=True))


@dataclass(frozen=True)
class GuardCounts:
    gaps: int
    duplicates: int
    out_of_order: int
    missing: int


class SequenceGuard:
    def __init__(self, client: redis.Redis, stream: str, group: str, max_holes: int = DEFAULT_MAX_HOLES) -> None:
        if max_holes < 1:
            raise ValueError(f"max_holes must be >= 1, got {max_holes}")
        self._client = client
        self._script = client.register_script(_SCRIPT)
        self._stream, self._group = stream, group
        self._max_holes = str(max_holes)

    def keys(self, symbol: str) -> list[str]:
        return guard_keys(self._stream, self._group, symbol)

    def check(
        self,
        symbols: np.ndarray,
        seqs: np.ndarray,
        redelivered: bool = False,
        entry_ids: tuple[str, str] | None = None,
    ) -> dict[str, GuardCounts]:
        """Account for a batch of deliveries (arrival order); returns what it found per symbol.

        ``entry_ids``: the batch's first and last entry ids, when it was read from the group's stream. A hole it
        opens is then counted as a gap only once every entry delivered before the batch is checked too (by
        whichever consumer holds it): another consumer's earlier batch, checked later, fills it unseen. Without
        them the batch is taken as the stream's next, its holes counted at once.
        """
        # Each symbol's positions, in arrival order, from codes: a pandas groupby on the text cost 0.7 ms a batch.
        codes, names = pd.factorize(symbols)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
        runs: dict[str, str] = {}
        for code, symbol in enumerate(names):
            batch = seqs[order[bounds[code] : bounds[code + 1]]]
            if batch.min() < 0 or batch.max() > MAX_SEQ:
                raise ValueError(f"seqs of {symbol} outside 0 .. 2**63-1: {batch.min()} .. {batch.max()}")
            runs[str(symbol)] = _runs(batch)
        return self._call(runs, redelivered, entry_ids)

    def confirm(self) -> dict[str, GuardCounts]:
        """Count the holes that are gaps by now (every entry before their batch is checked) for every symbol of
        the group that has unconfirmed ones: those a symbol's own next batch would have counted. A drain calls it
        at its end, a serving consumer with its claims."""
        members = self._client.smembers(guard_group_keys(self._stream, self._group)[1])
        pending = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
        return self._call(dict.fromkeys(pending, ""), False, None) if pending else {}

    def _call(
        self, runs: dict[str, str], redelivered: bool, entry_ids: tuple[str, str] | None
    ) -> dict[str, GuardCounts]:
        """One script call for the whole batch: its symbols are judged against the same checked batches."""
        keys = [*guard_group_keys(self._stream, self._group), self._stream]
        args = ["1" if redelivered else "0", self._max_holes, *(entry_ids or ("", "")), self._group]
        for symbol, packed in runs.items():
            keys += self.keys(symbol)
            args += [symbol, packed]
        reply = self._script(keys=keys, args=args)
        found: dict[str, GuardCounts] = {}
        for n, symbol in enumerate(runs):
            gaps, dups, late, missing = reply[4 * n : 4 * n + 4]
            found[symbol] = GuardCounts(int(gaps), int(dups), int(late), int(missing))
        return found


def advance(client: redis.Redis, stream: str, group: str, symbol: str, seq: int) -> bool:
    """Count every seq of ``symbol`` up to ``seq`` as arrived in ``group``'s guard of ``stream``, when that guard
    has state below it: after a re-shard back, the seqs the instrument had on another stream meanwhile are no gap
    here (that stream's guard saw them). Without state the guard takes its first seq as baseline anyway."""
    if not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"seq {seq} outside 0 .. 2**63-1")
    return bool(client.eval(_ADVANCE, 1, guard_keys(stream, group, symbol)[0], str(seq)))
