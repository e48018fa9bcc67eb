-- Where trust for authentication comes from: the CA bundles and the
-- front-proxy (request-header) settings. As k8s.io/apiserver does it:
--   --client-ca-file, else the ConfigMap's client-ca-file;
--   --requestheader-client-ca-file set: every request-header setting from flags;
--   else all of them from kube-system/extension-apiserver-authentication.
-- The ConfigMap is re-read every --authentication-lookup-interval by the
-- periodic task; the CA bundles go to the host's TLS store (host.tls), the
-- header settings to the shared store so every Lua state sees the same.
local auth_config = {}

local CONFIGMAP_PATH = "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"
local SHARED_KEY = "auth_config.requestheader"
local NEXT_LOOKUP_KEY = "auth_config.next_lookup" -- monotonic seconds, as a decimal string

--- A comma-separated flag value as a list: items trimmed, empty ones dropped.
function auth_config.split_list(text)
  local out = {}
  for item in (text or ""):gmatch("[^,]+") do
    item = item:gsub("^%s+", ""):gsub("%s+$", "")
    if item ~= "" then
      out[#out + 1] = item
    end
  end
  return out
end

--- Request-header settings from the flags (used when the CA is a flag too).
function auth_config.from_flags(flags)
  return {
    allowed_names = auth_config.split_list(flags["requestheader-allowed-names"]),
    username_headers = auth_config.split_list(flags["requestheader-username-headers"]),
    group_headers = auth_config.split_list(flags["requestheader-group-headers"]),
    extra_prefixes = auth_config.split_list(flags["requestheader-extra-headers-prefix"]),
    uid_headers = auth_config.split_list(flags["requestheader-uid-headers"]),
  }
end

-- A ConfigMap value holding a JSON array of strings ("" or absent: empty).
local function json_list(cjson, data, key)
  local text = data[key]
  if text == nil or text == "" then
    return {}
  end
  local ok, value = pcall(cjson.decode, text)
  if not ok or type(value) ~= "table" then
    return nil, ("%s is not a JSON array of strings"):format(key)
  end
  -- cjson decodes objects to tables too: {"a":"b"} must not pass as an empty list
  -- (an empty allowed-names list allows every name).
  local count = 0
  for _ in pairs(value) do
    count = count + 1
  end
  if count ~= #value then
    return nil, ("%s is not a JSON array of strings"):format(key)
  end
  for _, v in ipairs(value) do
    if type(v) ~= "string" then
      return nil, ("%s is not a JSON array of strings"):format(key)
    end
  end
  return value
end

-- A ConfigMap's data is map[string]string; anything else is not a ConfigMap
-- kube would serve (an empty 200 answer decodes to true).
local function configmap_data(cm, null)
  if type(cm) ~= "table" then
    return nil, "the answer is not a ConfigMap"
  end
  local data = cm.data
  if data == nil or data == null then
    return {}
  end
  if type(data) ~= "table" then
    return nil, "its data is not a map of strings"
  end
  for k, v in pairs(data) do
    if type(k) ~= "string" or type(v) ~= "string" then
      return nil, "its data is not a map of strings"
    end
  end
  return data
end

--- Request-header settings from the ConfigMap's data (nil when it holds no
-- request-header CA: no front-proxy authentication then).
function auth_config.from_configmap(cjson, data)
  if not data["requestheader-client-ca-file"] or data["requestheader-client-ca-file"] == "" then
    return nil
  end
  local out = {}
  for field, key in pairs({
    allowed_names = "requestheader-allowed-names",
    username_headers = "requestheader-username-headers",
    group_headers = "requestheader-group-headers",
    extra_prefixes = "requestheader-extra-headers-prefix",
    uid_headers = "requestheader-uid-headers",
  }) do
    local list, err = json_list(cjson, data, key)
    if not list then
      return nil, err
    end
    out[field] = list
  end
  return out
end

--- Creates the configuration source.
-- @tparam table deps flags; k8s (client or nil); tls (host.tls-like or nil);
--   shared (host.shared-like); cjson; log; monotonic (clock)
function auth_config.new(deps)
  local flags = deps.flags
  local self = {}
  local interval = deps.lookup_interval or 30
  local skip = flags["authentication-skip-lookup"] == "true"
  local tolerate = flags["authentication-tolerate-lookup-failure"] == "true"
  local rh_from_flags = flags["requestheader-client-ca-file"] ~= nil

  local function publish(settings)
    deps.shared.set(SHARED_KEY, deps.cjson.encode({ settings = settings or false }))
  end

  local function lookup()
    if not deps.k8s then
      return nil, "no Kubernetes API configured (use --kubeconfig, run in a cluster, "
        .. "or --authentication-skip-lookup)"
    end
    local cm, err = deps.k8s:get(CONFIGMAP_PATH)
    if not cm then
      if err.code == "not_found" then
        deps.log.warn("authentication ConfigMap not found; using flags only", {})
        return {}
      end
      local hint = err.code == "forbidden" and " (bind the Role kube-system/extension-apiserver-"
        .. "authentication-reader to this server's ServiceAccount)" or ""
      return nil, ("cannot read kube-system/extension-apiserver-authentication: %s%s"):format(
        err.message, hint)
    end
    local data, why = configmap_data(cm, deps.cjson.null)
    if not data then
      return nil, "kube-system/extension-apiserver-authentication: " .. why
    end
    return data
  end

  local function apply(data)
    local settings, err
    if not rh_from_flags then
      settings, err = auth_config.from_configmap(deps.cjson, data)
      if err then
        return nil, "extension-apiserver-authentication: " .. err
      end
    end
    if deps.tls then
      local ok, tls_err = deps.tls.set_cluster_cas({
        client_ca = data["client-ca-file"] ~= "" and data["client-ca-file"] or nil,
        requestheader_ca = not rh_from_flags and settings and data["requestheader-client-ca-file"] or nil,
      })
      if not ok then
        return nil, "extension-apiserver-authentication: " .. tls_err
      end
    end
    if not rh_from_flags then
      publish(settings)
    end
    return true
  end

  --- The periodic task: reads the ConfigMap when due. On the first call a
  -- failure is fatal unless --authentication-tolerate-lookup-failure.
  function self.refresh(first)
    if first then
      publish(rh_from_flags and auth_config.from_flags(flags) or nil)
    end
    -- The schedule lives in shared: the host may run this task in any of its states.
    local due = tonumber((deps.shared.get(NEXT_LOOKUP_KEY))) or 0
    if skip or (not first and deps.monotonic() < due) then
      return true
    end
    deps.shared.set(NEXT_LOOKUP_KEY, tostring(deps.monotonic() + interval))
    local data, err = lookup()
    local ok
    if data then
      ok, err = apply(data)
    end
    if ok then
      return true
    end
    if first and not tolerate then
      return nil, err
    end
    deps.log.warn("authentication config not refreshed; keeping the last one", { error = err })
    return true
  end

  --- The request-header settings in force, or nil (front-proxy auth off).
  -- Decoded once per change, not per request.
  local last_text, last_settings
  function self.requestheader()
    local text = deps.shared.get(SHARED_KEY)
    if text ~= last_text then
      last_text = text
      last_settings = text and deps.cjson.decode(text).settings or nil
    end
    return last_settings
  end

  return self
end

return auth_config
