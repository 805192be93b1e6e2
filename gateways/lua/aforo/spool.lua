-- The on-disk spool of aforo.core's queue: an append-only file of JSON lines, {"e": event}
-- when an event is queued and {"a": [event ids]} when a batch is settled (delivered, duplicate or rejected). Replaying it
-- gives the events queued and never settled; it is rewritten with just those (compacted) when
-- the queue empties or after compact_every acknowledgements. A torn last line is skipped.

local M = {}
local Spool = {}
Spool.__index = Spool

function M.new(path, opts)
  opts = opts or {}
  return setmetatable({ path = path, json = opts.json or require("aforo.core").json,
    compact_every = opts.compact_every or 10000,
    acked = 0, lines = 0 }, Spool)
end

function Spool:replay()
  local f = io.open(self.path, "r")
  if not f then return {} end
  local events, pos, settled = {}, {}, {}
  for line in f:lines() do
    local rec = self.json.decode(line)
    if type(rec) == "table" and type(rec.e) == "table" and rec.e.event_id then
      if not pos[rec.e.event_id] then events[#events + 1] = rec.e; pos[rec.e.event_id] = #events end
    elseif type(rec) == "table" and type(rec.a) == "table" then
      for _, id in ipairs(rec.a) do settled[id] = true end
    end
  end
  f:close()
  local pending = {}
  for _, ev in ipairs(events) do if not settled[ev.event_id] then pending[#pending + 1] = ev end end
  return pending
end

function Spool:_write(line)
  if not self.f then
    local f, err = io.open(self.path, "a")
    if not f then return nil, err end
    self.f = f
  end
  self.f:write(line, "\n")
  self.f:flush()
  self.lines = self.lines + 1
  return true
end

function Spool:append(event) return self:_write(self.json.encode({ e = event })) end

function Spool:ack(ids)
  self.acked = self.acked + #ids
  return self:_write(self.json.encode({ a = ids }))
end

-- Rewrite the file with only the given (pending) events: write a temporary file, rename it over.
function Spool:compact(pending)
  if self.f then self.f:close(); self.f = nil end
  local tmp = self.path .. ".tmp"
  local f, err = io.open(tmp, "w")
  if not f then return nil, err end
  for _, ev in ipairs(pending) do f:write(self.json.encode({ e = ev }), "\n") end
  f:close()
  local ok, rerr = os.rename(tmp, self.path)
  self.acked, self.lines = 0, #pending
  return ok, rerr
end

M.Spool = Spool
return M
