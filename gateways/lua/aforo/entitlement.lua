-- Entitlement check (POST /api/v1/entitlements/check) with a short local cache, for the
-- access phase of a gateway. Plain Lua; the sender and the clock are injected (see core.lua).
--
--   local ent = require("aforo.entitlement").new({ endpoint = ..., token = ..., sender = send })
--   local allow, answer = ent:check({ api_key = key, metric = "api_calls", units = "1" }, now)
--
-- allow is false only when Aforo says allow=false (limit_reached, unknown_api_key, …), or when
-- Aforo cannot be asked and fail_open is false. Answers are cached for ttl seconds (default 1)
-- per (subject, metric, units, dimensions); the cache holds at most max_entries.

local core = require("aforo.core")

local M = {}
local Checker = {}
Checker.__index = Checker

function M.new(opts)
  assert(opts and opts.endpoint and opts.sender, "aforo: endpoint and sender are required")
  return setmetatable({
    url = opts.endpoint:gsub("/+$", "") .. "/api/v1/entitlements/check",
    token = opts.token,
    sender = opts.sender,
    json = opts.json or core.json,
    ttl = opts.ttl or 1,
    fail_open = opts.fail_open ~= false,
    max_entries = opts.max_entries or 10000,
    log = opts.log or function() end,
    cache = {}, entries = 0,
    metrics = { checks = 0, hits = 0, errors = 0, denied = 0 },
  }, Checker)
end

local function key_of(req)
  local dims = {}
  for k, v in pairs(req.dimensions or {}) do dims[#dims + 1] = k .. "=" .. tostring(v) end
  table.sort(dims)
  return table.concat({ tostring(req.api_key or ("customer:" .. tostring(req.customer_id))),
    req.metric, core.quantity(req.units), table.concat(dims, "&") }, "\0")
end
M.key_of = key_of

-- Returns allow (boolean), answer (Aforo's JSON, or { reason = "check_failed", degraded = true }),
-- cached (boolean).
function Checker:check(req, now)
  self.metrics.checks = self.metrics.checks + 1
  local key = key_of(req)
  local hit = self.cache[key]
  if hit and hit.expires > now then
    self.metrics.hits = self.metrics.hits + 1
    return hit.allow, hit.answer, true
  end
  local body = { metric = req.metric, units = core.quantity(req.units) }
  if req.customer_id ~= nil then body.customer_id = tonumber(req.customer_id) else body.api_key = req.api_key end
  if req.dimensions and next(req.dimensions) then body.dimensions = req.dimensions end
  local res, err = self.sender({
    method = "POST", url = self.url, body = self.json.encode(body),
    headers = { ["Authorization"] = "Bearer " .. tostring(self.token), ["Content-Type"] = "application/json" },
  })
  local answer = res and res.status == 200 and res.body and self.json.decode(res.body)
  if type(answer) ~= "table" or type(answer.allow) ~= "boolean" then
    -- Aforo unreachable or an unexpected answer: the configured failure mode, not cached.
    self.metrics.errors = self.metrics.errors + 1
    self.log("warn", "entitlement check failed: " .. tostring(err or (res and res.status)))
    if not self.fail_open then self.metrics.denied = self.metrics.denied + 1 end
    return self.fail_open, { allow = self.fail_open, reason = "check_failed", degraded = true }, false
  end
  if not hit then
    if self.entries >= self.max_entries then self.cache, self.entries = {}, 0 end
    self.entries = self.entries + 1
  end
  self.cache[key] = { allow = answer.allow, answer = answer, expires = now + self.ttl }
  if not answer.allow then self.metrics.denied = self.metrics.denied + 1 end
  return answer.allow, answer, false
end

M.Checker = Checker
return M
