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

from shadow_pipeline.redis_io.keys import guard_keys

_SCRIPT = """
-- KEYS: state hash, holes (sorted set), the first version's seen-bitmap. ARGV: runs, redelivered ('1'), max holes.
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

local state = redis.call('HMGET', KEYS[1], 'high', 'base', 'missing', 'forgotten')
local high, base  -- decimal strings, as the producer wrote them
local mh, ml, forgotten = 0, 0, 0
if state[1] and not state[2] then
  -- The bitmap guard's state: go on from its high and missing, give up what is below high, free the bitmap.
  if tonumber(state[1]) >= 0 then
    high, base = state[1], state[1]
    local m = math.max(tonumber(state[3] or '0'), 0)
    mh, ml = math.floor(m / B), m % B
  end
  redis.call('UNLINK', KEYS[3])
elseif state[1] then
  high, base = state[1], state[2]
  mh, ml = parse(state[3])
  forgotten = tonumber(state[4])
end
local ph, pb = high and pad(high), base and pad(base)
local hh, hl, bh, bl
if high then hh, hl = parse(high); bh, bl = parse(base) end

local redelivery = ARGV[2] == '1'
local gh, gl, dups, late, filled = 0, 0, 0, 0, 0
local opened = {}  -- new holes, added in one ZADD before the next lookup
local function flush()
  if #opened > 0 then
    redis.call('ZADD', KEYS[2], unpack(opened))
    opened = {}
  end
end

-- Seqs x .. y (padded px, py), all at or below high, arrive: the ones in holes are late, the rest duplicates.
-- A hole '<lo>:<hi>' holds the seqs strictly between lo and hi (19-digit seqs that did arrive, or BELOW).
local function arrive(px, py)
  local holes = redis.call('ZREVRANGEBYLEX', KEYS[2], '(' .. px .. ':', '-', 'LIMIT', 0, 1)
  if holes[1] and string.sub(holes[1], 21) <= px then holes = {} end
  if px ~= py then
    for _, hole in ipairs(redis.call('ZRANGEBYLEX', KEYS[2], '[' .. px, '(' .. py .. ':')) do
      holes[#holes + 1] = hole
    end
  end
  local xh, xl = parse(px)
  local yh, yl = xh, xl
  if px ~= py then yh, yl = parse(py) end
  local came = 0
  for _, hole in ipairs(holes) do
    local lo, hi = string.sub(hole, 1, 19), string.sub(hole, 21)
    local uh, ul = inc(parse(lo))  -- the seqs that come, u .. v: max(lo + 1, x) .. min(hi - 1, y)
    local vh, vl = dec(parse(hi))
    local split_low, split_high = lt(uh, ul, xh, xl), lt(yh, yl, vh, vl)
    if split_low then uh, ul = xh, xl end
    if split_high then vh, vl = yh, yl end
    came = came + count(uh, ul, vh, vl)
    if not lt(vh, vl, bh, bl) then
      if lt(uh, ul, bh, bl) then uh, ul = bh, bl end
      filled = filled + count(uh, ul, vh, vl)
    end
    redis.call('ZREM', KEYS[2], hole)
    if split_low then redis.call('ZADD', KEYS[2], 0, lo .. ':' .. px) end
    if split_high then redis.call('ZADD', KEYS[2], 0, py .. ':' .. hi) end
  end
  late = late + came
  if not redelivery then dups = dups + count(xh, xl, yh, yl) - came end
end

-- Each token is a run of consecutive seqs, '<first>' or '<first>-<last>', in arrival order.
for first, last in string.gmatch(ARGV[1], '(%d+)%-?(%d*)') do
  local single = last == ''
  if single then last = first end
  local pf = pad(first)
  local pl = single and pf or pad(last)
  if not high then
    high, base, ph, pb = last, first, pl, pf
    hh, hl = parse(last)
    bh, bl = parse(first)
    if bh > 0 or bl > 0 then opened[#opened + 1] = 0; opened[#opened + 1] = BELOW .. ':' .. pf end
  elseif pf > ph then
    local fh, fl = parse(first)
    local nh, nl = inc(hh, hl)
    if fh ~= nh or fl ~= nl then
      opened[#opened + 1] = 0
      opened[#opened + 1] = ph .. ':' .. pf
      gh, gl = add(gh, gl, sub(fh, fl, nh, nl))
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
if not high then return {'0', 0, 0, '0'} end

-- Past max holes, give up the lowest (oldest) ones: their seqs stay in missing; one arriving after all is then
-- taken for a duplicate. forgotten counts the holes given up (the one below the baseline is not counted).
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if over > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #popped, 2 do
    if string.sub(popped[i], 21) > pb then forgotten = forgotten + 1 end
  end
end

-- missing is at most 2**63, filled at most the batch's length: the pairs stay exact.
mh, ml = add(mh, ml, gh, gl)
mh, ml = sub(mh, ml, 0, filled)
local missing = show(mh, ml)
redis.call('HSET', KEYS[1], 'high', high, 'base', base, 'missing', missing, 'forgotten', forgotten)
return {show(gh, gl), dups, late, missing}
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
        self._script = client.register_script(_SCRIPT)
        self._stream, self._group = stream, group
        self._max_holes = str(max_holes)

    def keys(self, symbol: str) -> list[str]:
        return guard_keys(self._stream, self._group, symbol)

    def check(self, symbols: np.ndarray, seqs: np.ndarray, redelivered: bool = False) -> dict[str, GuardCounts]:
        """Account for a batch of deliveries (arrival order); returns what it found per symbol."""
        found: dict[str, GuardCounts] = {}
        # Each symbol's positions, in arrival order, from codes: a pandas groupby on the text cost 0.7 ms a batch.
        codes, names = pd.factorize(symbols)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
        for code, symbol in enumerate(names):
            batch = seqs[order[bounds[code] : bounds[code + 1]]]
            if batch.min() < 0 or batch.max() > MAX_SEQ:
                raise ValueError(f"seqs of {symbol} outside 0 .. 2**63-1: {batch.min()} .. {batch.max()}")
            packed = _runs(batch)
            reply = self._script(
                keys=self.keys(str(symbol)), args=[packed, "1" if redelivered else "0", self._max_holes]
            )
            gaps, dups, late, missing = reply
            found[str(symbol)] = GuardCounts(int(gaps), int(dups), int(late), int(missing))
        return found


def advance(client: redis.Redis, stream: str, group: str, symbol: str, seq: int) -> bool:
    """Count every seq of ``symbol`` up to ``seq`` as arrived in ``group``'s guard of ``stream``, when that guard
    has state below it: after a re-shard back, the seqs the instrument had on another stream meanwhile are no gap
    here (that stream's guard saw them). Without state the guard takes its first seq as baseline anyway."""
    if not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"seq {seq} outside 0 .. 2**63-1")
    return bool(client.eval(_ADVANCE, 1, guard_keys(stream, group, symbol)[0], str(seq)))
