-- Configuration of the aforo plugin (Kong 3.x schema format).
local typedefs = require("kong.db.schema.typedefs")

local API_KEY_SOURCES = { "consumer_custom_id", "consumer_username", "consumer_id", "credential_key", "header" }

return {
  name = "aforo",
  fields = {
    { protocols = typedefs.protocols_http },
    { config = {
      type = "record",
      fields = {
        -- where events go: Aforo's base URL and the tenant's ingest token (a vault reference is fine)
        { endpoint = typedefs.url({ required = true }) },
        { ingest_token = { type = "string", required = true, encrypted = true, referenceable = true } },
        -- what one request counts as
        { metric = { type = "string", required = true, default = "api_calls" } },
        { quantity = { type = "string", required = true, default = "1", match = "^%d+%.?%d*$" } },
        -- who pays: the authenticated consumer's custom_id (default: store the customer's Aforo
        -- API key there), its username or id, the credential's key (key-auth), or a header
        { api_key_source = { type = "string", required = true, default = "consumer_custom_id", one_of = API_KEY_SOURCES } },
        { api_key_header = typedefs.header_name({ default = "x-api-key" }) },
        -- dimensions taken from request headers: { dimension = "header-name" }
        { dimension_headers = { type = "map", keys = { type = "string" }, values = typedefs.header_name, default = {} } },
        { meter_all_statuses = { type = "boolean", required = true, default = false } }, -- false: 1xx–3xx only
        -- access-phase enforcement: 429 when POST /api/v1/entitlements/check answers allow=false
        { enforce = { type = "boolean", required = true, default = false } },
        { fail_open = { type = "boolean", required = true, default = true } },
        { cache_ttl = { type = "number", required = true, default = 1, gt = 0 } },
        { check_timeout_ms = { type = "integer", required = true, default = 500, gt = 0 } },
        -- the batching queue (per Kong worker and plugin configuration)
        { batch_size = { type = "integer", required = true, default = 100, between = { 1, 1000 } } },
        { flush_interval = { type = "number", required = true, default = 1, gt = 0 } },
        { max_buffer = { type = "integer", required = true, default = 10000, gt = 0 } },
        { timeout_ms = { type = "integer", required = true, default = 5000, gt = 0 } },
        { backoff_base = { type = "number", required = true, default = 0.5, gt = 0 } },
        { backoff_max = { type = "number", required = true, default = 30, gt = 0 } },
        { spool_dir = { type = "string", required = false } }, -- on-disk spool (per worker), replayed at start
        { max_attempts = { type = "integer", required = true, default = 0, between = { 0, 1000 } } }, -- 0: until delivered
      },
    } },
  },
}
