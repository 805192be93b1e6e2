-- luarocks make gateways/kong/kong-plugin-aforo-0.1.0-1.rockspec   (from the repository root)
package = "kong-plugin-aforo"
version = "0.1.0-1"
source = { url = "git+file:///path/to/aforo" } -- a placeholder: `luarocks make` builds from the checkout
description = {
  summary = "Meter every request into Aforo (usage-based billing) and enforce its limits at the edge.",
  license = "Apache-2.0",
}
dependencies = {} -- lua-cjson and ngx come with Kong
build = {
  type = "builtin",
  modules = {
    ["kong.plugins.aforo.handler"] = "gateways/kong/kong/plugins/aforo/handler.lua",
    ["kong.plugins.aforo.schema"] = "gateways/kong/kong/plugins/aforo/schema.lua",
    ["aforo.core"] = "gateways/lua/aforo/core.lua",
    ["aforo.spool"] = "gateways/lua/aforo/spool.lua",
    ["aforo.entitlement"] = "gateways/lua/aforo/entitlement.lua",
    ["aforo.ngx_runner"] = "gateways/lua/aforo/ngx_runner.lua",
  },
}
