"""The sequence-gap guard, shared by every consumer of a group through Redis.

Each consumer sees only its share of the stream, so a per-process guard would see gaps everywhere. The
guard's state lives in Redis and one Lua script per batch updates it atomically. Redelivered
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

Several consumers of a group check their batches out of the stream's order. So a batch's runs wait in Redis until
every entry the group delivered before them is checked or acked (the oldest pending entry in no checked batch,
from XPENDING), and are then applied in id order by the rules above: the counts of one consumer reading the stream
in order (docs/ingest.md, "Several consumers of a group").

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
-- KEYS: the group's checked ranges (sorted set by first id ms), the group's symbols with waiting units, the stream,
-- the group's checked single entries (sorted set by id ms), the group's frontier, then per symbol its 4 keys.
-- ARGV: redelivered ('1'), max holes, the batch's first and last entry ids ('' for none: the stream's next batch;
-- '*': each run is one entry's '<seq>@<id>'), the group, then per symbol its name and its runs.
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


-- The in-order guard: one batch's runs, arriving after everything applied before it. K: the symbol's state
-- hash, holes, the first version's seen-bitmap. Returns gaps (a pair), duplicates, late and missing.
local function apply(K, runs, redelivery)
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
  local opened = {}  -- new holes, added in one ZADD before the next lookup
  local function flush()
    if #opened > 0 then
      redis.call('ZADD', K[2], unpack(opened))
      opened = {}
    end
  end

  -- Seqs x .. y (padded px, py), all at or below high, arrive: the ones in holes are late, the rest duplicates.
  -- A hole '<lo>:<hi>' holds the seqs strictly between lo and hi (19-digit seqs that did arrive, or BELOW).
  local function arrive(px, py)
    local holes = redis.call('ZREVRANGEBYLEX', K[2], '(' .. px .. ':', '-', 'LIMIT', 0, 1)
    if holes[1] and string.sub(holes[1], 21) <= px then holes = {} end
    if px ~= py then
      for _, hole in ipairs(redis.call('ZRANGEBYLEX', K[2], '[' .. px, '(' .. py .. ':')) do
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
      redis.call('ZREM', K[2], hole)
      if split_low then redis.call('ZADD', K[2], 0, lo .. ':' .. px) end
      if split_high then redis.call('ZADD', K[2], 0, py .. ':' .. hi) end
    end
    late = late + came
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
  if not high then return 0, 0, 0, 0, '0' end

  -- Past max holes, give up the lowest (oldest) ones: their seqs stay in missing; one arriving after all is then
  -- taken for a duplicate. forgotten counts the holes given up (the one below the baseline is not counted).
  local over = redis.call('ZCARD', K[2]) - tonumber(ARGV[2])
  if over > 0 then
    local popped = redis.call('ZPOPMIN', K[2], over)
    for i = 1, #popped, 2 do
      if string.sub(popped[i], 21) > pb then forgotten = forgotten + 1 end
    end
  end

  -- missing is at most 2**63, filled at most the batch's length: the pairs stay exact.
  mh, ml = add(mh, ml, gh, gl)
  mh, ml = sub(mh, ml, 0, filled)
  local missing = show(mh, ml)
  redis.call('HSET', K[1], 'high', high, 'base', base, 'missing', missing, 'forgotten', forgotten)
  return gh, gl, dups, late, missing
end

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
local function span(range)  -- a checked range '<first> <last>'
  local sep = string.find(range, ' ', 1, true)
  return string.sub(range, 1, sep - 1), string.sub(range, sep + 1)
end

-- The frontier (KEYS[5]): every entry before it is checked or acked, for good (a checked entry stays checked, an
-- acked one acked, and entries are delivered in id order). Each call walks on from it to the first pending entry
-- in no checked range (XPENDING over the checked ranges and entries), moves it there and drops what lies behind
-- it. Returns that entry, or nil when everything pending is checked.
local frontier = redis.call('GET', KEYS[5])
local function successor(id)  -- the id right after ``id`` (maybe no entry's): '<ms>-<seq + 1>', exactly
  local ms, seq = id_parts(id)
  local n = #seq
  while n > 0 and string.sub(seq, n, n) == '9' do n = n - 1 end
  if n == 0 then return ms .. '-1' .. string.rep('0', #seq) end
  return ms .. '-' .. string.sub(seq, 1, n - 1) .. string.char(string.byte(seq, n) + 1) .. string.rep('0', #seq - n)
end
local function find_unchecked()
  local reply = redis.pcall('XPENDING', KEYS[3], ARGV[5], frontier or '-', '+', 1)
  if reply.err then return nil end  -- no such group: nobody holds anything
  local p = reply[1] and reply[1][1]
  local upto  -- the end of the checked stretch walked so far
  for _ = 1, 1000 do  -- a bound on one call's work; the next call goes on from where this one stopped
    if not p then break end
    local hold = redis.call('ZSCORE', KEYS[4], p) and p  -- the end of what was checked from p on
    for _, range in ipairs(redis.call('ZREVRANGEBYSCORE', KEYS[1], id_ms(p), '-inf', 'LIMIT', 0, 64)) do
      local f, l = span(range)
      if not id_lt(p, f) and not id_lt(l, p) and (not hold or id_lt(hold, l)) then hold = l end
    end
    if not hold then break end
    upto = hold
    local after = redis.call('XPENDING', KEYS[3], ARGV[5], '(' .. upto, '+', 1)
    p = after[1] and after[1][1]
  end
  -- Nothing pending past the stretch: the entries after it are acked or not delivered yet.
  local moved = p or (upto and successor(upto))
  if moved then
    frontier = moved
    redis.call('SET', KEYS[5], moved)
  end
  if not p then redis.call('DEL', KEYS[1], KEYS[4]) end  -- all checked ranges and entries are behind it
  if p and moved then
    for key = 1, 4, 3 do  -- behind the frontier nothing is looked up again
      for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[key], '-inf', id_ms(p))) do
        local l = member
        if key == 1 then _, l = span(member) end
        if id_lt(l, p) then redis.call('ZREM', KEYS[key], member) end
      end
    end
  end
  return p
end
local unchecked, looked = nil, false
local function oldest_unchecked()
  if not looked then unchecked, looked = find_unchecked(), true end
  return unchecked
end
local passed = frontier  -- as this call found it: what it checks below it was checked before
local function ready_before(first, before) return not before or id_lt(first, before) end

-- A waiting unit is '<first id>|<redelivered>|<runs>': a batch's runs of one symbol, or one claimed entry's seq.
local function unit_parts(unit)
  local a = string.find(unit, '|', 1, true)
  return string.sub(unit, 1, a - 1), string.sub(unit, a + 1, a + 1) == '1', string.sub(unit, a + 3)
end
local budget = 5000  -- waiting units applied by one call at most: a backlog goes over several (confirm loops)

-- One symbol: K = its state hash, holes, the first version's seen-bitmap, and its waiting units (by first id ms).
-- Runs wait until every entry before them is checked or acked, then all that can go are applied in id order:
-- the counts of one consumer reading the stream in order, whoever checked what first.
local function check(K, symbol, runs)
  local redelivery = ARGV[1] == '1'
  if ARGV[3] == '' then  -- no ids: the stream's next batch
    local gh, gl, dups, late, missing = apply(K, runs, redelivery)
    return {show(gh, gl), dups, late, missing}
  end
  local new = {}  -- {first id, redelivered, runs}, in id order
  if ARGV[3] == '*' then  -- one unit per entry: '<seq>@<id>' tokens, the entries not next to each other
    for seq, id in string.gmatch(runs, '(%d+)@([%d%-]+)') do new[#new + 1] = {id, redelivery, seq} end
  elseif runs ~= '' then
    new[1] = {ARGV[3], redelivery, runs}
  end
  for _, unit in ipairs(new) do
    -- Behind the frontier already: another consumer claimed and checked these entries meanwhile (or they were
    -- acked), so this check comes again.
    if passed and id_lt(unit[1], passed) then unit[2] = true end
  end
  local before = oldest_unchecked()
  local gh, gl, dups, late = 0, 0, 0, 0
  local missing = redis.call('HGET', K[1], 'missing') or '0'
  local function run(unit_runs, again)
    local uh, ul, d, l, m = apply(K, unit_runs, again)
    gh, gl = add(gh, gl, uh, ul)
    dups, late, missing = dups + d, late + l, m
  end
  local last = new[#new]
  if redis.call('ZCARD', K[4]) == 0 and (not last or ready_before(last[1], before)) then
    for _, unit in ipairs(new) do run(unit[3], unit[2]) end  -- nothing waits before them: at once
  else
    for _, unit in ipairs(new) do
      redis.call('ZADD', K[4], id_ms(unit[1]), unit[1] .. '|' .. (unit[2] and '1' or '0') .. '|' .. unit[3])
    end
    local units
    if before then
      units = redis.call('ZRANGEBYSCORE', K[4], '-inf', id_ms(before))
    else
      units = redis.call('ZRANGE', K[4], 0, -1)
    end
    local ready = {}
    for _, unit in ipairs(units) do
      local first, again, unit_runs = unit_parts(unit)
      if ready_before(first, before) then ready[#ready + 1] = {first, again, unit, unit_runs} end
    end
    -- In the stream's order; a batch checked again after a lost connection goes after its first check.
    table.sort(ready, function(a, b)
      if a[1] ~= b[1] then return id_lt(a[1], b[1]) end
      return b[2] and not a[2]
    end)
    for n = 1, math.min(#ready, budget) do
      run(ready[n][4], ready[n][2])
      redis.call('ZREM', K[4], ready[n][3])
    end
    budget = budget - math.min(#ready, budget)
  end
  if redis.call('ZCARD', K[4]) > 0 then
    redis.call('SADD', KEYS[2], symbol)
  else
    redis.call('SREM', KEYS[2], symbol)
  end
  return {show(gh, gl), dups, late, missing}
end

-- What this call checks is recorded first, so that every symbol's units are judged against all of it.
if ARGV[3] == '*' then
  for i = 7, #ARGV, 2 do
    for id in string.gmatch(ARGV[i], '@([%d%-]+)') do redis.call('ZADD', KEYS[4], id_ms(id), id) end
  end
elseif ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[1], id_ms(ARGV[3]), ARGV[3] .. ' ' .. ARGV[4])
end
local found = {}
for i = 6, #ARGV, 2 do
  local k = 6 + (i - 6) * 2
  local counts = check({KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]}, ARGV[i], ARGV[i + 1])
  for _, value in ipairs(counts) do found[#found + 1] = value end
end
if ARGV[3] ~= '' then oldest_unchecked() end  -- moves the frontier on
found[#found + 1] = budget == 0 and 1 or 0  -- 1: waiting units were left for a later call
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
CONFIRM_CALLS = 100  # script calls of one confirm, 5,000 waiting batches each: a backlog past that waits on
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
        entry_ids: np.ndarray | None = None,
        contiguous: bool = True,
    ) -> dict[str, GuardCounts]:
        """Account for a batch of deliveries (arrival order); returns what it found per symbol.

        ``entry_ids``: the entries' ids, when the batch was read from the group's stream. Its runs then wait in
        Redis until every entry the group delivered before them is checked (by whichever consumer holds it), and
        are applied in the stream's order: what one consumer reading the stream in order counts. ``contiguous``:
        the batch is one stretch of the stream (a read of new entries), recorded as checked; otherwise (claimed or
        recovered entries, with others' between them) each entry waits on its own. Without ids the batch is taken
        as the stream's next, and counted at once.
        """
        # Each symbol's positions, in arrival order, from codes: a pandas groupby on the text cost 0.7 ms a batch.
        codes, names = pd.factorize(symbols)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
        runs: dict[str, str] = {}
        for code, symbol in enumerate(names):
            positions = order[bounds[code] : bounds[code + 1]]
            batch = seqs[positions]
            if batch.min() < 0 or batch.max() > MAX_SEQ:
                raise ValueError(f"seqs of {symbol} outside 0 .. 2**63-1: {batch.min()} .. {batch.max()}")
            if entry_ids is None or contiguous:
                runs[str(symbol)] = _runs(batch)
            else:
                pairs = zip(batch.tolist(), entry_ids[positions].tolist(), strict=True)
                runs[str(symbol)] = ",".join(f"{seq}@{entry_id}" for seq, entry_id in pairs)
        if entry_ids is None:
            span: tuple[str, str] = ("", "")
        else:
            span = (str(entry_ids[0]), str(entry_ids[-1])) if contiguous else ("*", "")
        return self._call(runs, redelivered, span)[0]

    def confirm(self) -> dict[str, GuardCounts]:
        """Apply the batches that can go by now (every entry before them checked or acked) for every symbol of the
        group that has some waiting: those its own next batch would have applied. A drain calls it at its end, a
        serving consumer with its claims."""
        found: dict[str, GuardCounts] = {}
        for _ in range(CONFIRM_CALLS):
            members = self._client.smembers(guard_group_keys(self._stream, self._group)[1])
            pending = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
            if not pending:
                break
            counts, more = self._call(dict.fromkeys(pending, ""), False, ("*", ""))
            for symbol, got in counts.items():
                was = found.get(symbol, GuardCounts(0, 0, 0, 0))
                found[symbol] = GuardCounts(
                    was.gaps + got.gaps,
                    was.duplicates + got.duplicates,
                    was.out_of_order + got.out_of_order,
                    got.missing,
                )
            if not more:
                break
        return found

    def _call(
        self, runs: dict[str, str], redelivered: bool, span: tuple[str, str]
    ) -> tuple[dict[str, GuardCounts], bool]:
        """One script call for the whole batch: its symbols are judged against the same checked ranges. Also says
        whether waiting batches that could go were left for a later call (at most 5,000 go in one)."""
        ranges, waiting, entries, frontier = guard_group_keys(self._stream, self._group)
        keys = [ranges, waiting, self._stream, entries, frontier]
        args = ["1" if redelivered else "0", self._max_holes, *span, self._group]
        for symbol, packed in runs.items():
            keys += self.keys(symbol)
            args += [symbol, packed]
        reply = self._script(keys=keys, args=args)
        found: dict[str, GuardCounts] = {}
        for n, symbol in enumerate(runs):
            gaps, dups, late, missing = reply[4 * n : 4 * n + 4]
            found[symbol] = GuardCounts(int(gaps), int(dups), int(late), int(missing))
        return found, bool(int(reply[-1]))


def advance(client: redis.Redis, stream: str, group: str, symbol: str, seq: int) -> bool:
    """Count every seq of ``symbol`` up to ``seq`` as arrived in ``group``'s guard of ``stream``, when that guard
    has state below it: after a re-shard back, the seqs the instrument had on another stream meanwhile are no gap
    here (that stream's guard saw them). Without state the guard takes its first seq as baseline anyway."""
    if not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"seq {seq} outside 0 .. 2**63-1")
    return bool(client.eval(_ADVANCE, 1, guard_keys(stream, group, symbol)[0], str(seq)))
