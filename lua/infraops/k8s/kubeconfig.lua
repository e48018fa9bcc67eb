-- Where the Kubernetes API is and how to authenticate to it: the --kubeconfig
-- flag, the in-cluster service account, $KUBECONFIG or ~/.kube/config, in the
-- order client-go's BuildConfigFromFlags uses (see docs/kubernetes-client.md).
-- The result is a plain "connection" table; nothing here talks to the API,
-- and token files and exec plugins are only recorded: infraops.k8s.credentials
-- reads and runs them, per request.
local kubeconfig = {}

kubeconfig.IN_CLUSTER_ROOT = "/var/run/secrets/kubernetes.io/serviceaccount"

local MAX_CONFIG_BYTES = 8 * 1024 * 1024
local MAX_SMALL_FILE_BYTES = 1024 * 1024
local EXEC_API_VERSIONS = {
  ["client.authentication.k8s.io/v1"] = true,
  ["client.authentication.k8s.io/v1beta1"] = true,
}
local EXEC_CLUSTER_EXTENSION = "client.authentication.k8s.io/exec"

local function invalid(message)
  return nil, message, "invalid_config"
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

local function dirname(path)
  local dir = path:match("^(.*)/[^/]*$")
  if dir == nil then
    return "."
  end
  return dir == "" and "/" or dir
end

-- kubectl resolves relative file references against the kubeconfig's directory.
local function resolve_path(dir, path)
  if path:sub(1, 1) == "/" then
    return path
  end
  return (dir == "/" and "" or dir) .. "/" .. path
end

-- A reader over decoded YAML: absent and null are the same, wrong types are
-- invalid_config naming the field (Go's decoder would refuse them too).
local function reader(null)
  local function is_null(v)
    -- yaml.null, or cjson.null (a light userdata) when JSON is decoded in specs.
    return v == nil or v == null or type(v) == "userdata"
  end
  local r = {}
  function r.value(tbl, key, kind, where)
    local v = tbl[key]
    if is_null(v) then
      return nil
    end
    if type(v) ~= kind then
      return nil, string.format("%s: '%s' must be a %s", where, key, kind == "table" and "mapping or list" or kind)
    end
    if kind == "string" and v == "" then
      return nil
    end
    if kind == "string" and v:find("\0", 1, true) then -- a path or argument would be cut there
      return nil, string.format("%s: '%s' must not contain a NUL byte", where, key)
    end
    return v
  end
  -- Reads several string fields at once; the first wrong type wins.
  function r.strings(tbl, keys, where)
    local out = {}
    for _, key in ipairs(keys) do
      local v, err = r.value(tbl, key, "string", where)
      if err then
        return nil, err
      end
      out[key] = v
    end
    return out
  end
  -- A kubeconfig list of { name = ..., <item_key> = {...} } -> name -> item.
  function r.named(tbl, key, item_key)
    local list, err = r.value(tbl, key, "table", "kubeconfig")
    if err then
      return nil, err
    end
    local out = {}
    for i, entry in ipairs(list or {}) do
      if type(entry) ~= "table" or type(entry.name) ~= "string" then
        return nil, string.format("kubeconfig: %s[%d] has no name", key, i)
      end
      local item
      item, err = r.value(entry, item_key, "table", string.format("%s %q", key, entry.name))
      if err then
        return nil, err
      end
      out[entry.name] = item or {}
    end
    return out
  end
  return r
end

-- host.yaml and host.crypto are loaded only when a kubeconfig needs them, so
-- the in-cluster path works without them.
local LAZY_DEFAULTS = {
  yaml = function() return require("host.yaml") end,
  base64_decode = function() return require("host.crypto").base64_decode end,
  base64_encode = function() return require("host.crypto").base64_encode end,
}

local function defaults(deps)
  deps = deps or {}
  local d = {
    fs = deps.fs or require("host.fs"),
    getenv = deps.getenv or os.getenv,
    log = deps.log or require("host.log"),
    yaml = deps.yaml,
    base64_decode = deps.base64_decode,
    base64_encode = deps.base64_encode,
  }
  return setmetatable(d, { __index = function(t, key)
    local load = LAZY_DEFAULTS[key]
    if load then
      rawset(t, key, load())
      return rawget(t, key)
    end
  end })
end

local function exists(d, path)
  return d.fs.stat(path) ~= nil
end

local function decode_data(d, value, field, where)
  local bytes, err = d.base64_decode(value)
  if not bytes then
    return invalid(string.format("%s: '%s' is not valid base64 (%s)", where, field, err or "?"))
  end
  -- host.http refuses (raises on) PEM text without a BEGIN line: say it here.
  if not bytes:find("-----BEGIN ", 1, true) then
    return invalid(string.format("%s: '%s' does not hold PEM data", where, field))
  end
  return bytes
end

local function check_server(server, where)
  if not server then
    return invalid(where .. ": 'server' is not set")
  end
  if not server:match("^https?://[^/?#]+") then
    return invalid(where .. ": 'server' must be an https:// or http:// URL")
  end
  return true
end

local function add_cluster(d, r, conn, cluster, dir, where)
  local f, err = r.strings(cluster, {
    "server", "certificate-authority", "certificate-authority-data", "tls-server-name", "proxy-url",
  }, where)
  if not f then
    return invalid(err)
  end
  local insecure
  insecure, err = r.value(cluster, "insecure-skip-tls-verify", "boolean", where)
  if err then
    return invalid(err)
  end
  local ok, msg = check_server(f.server, where)
  if not ok then
    return nil, msg, "invalid_config"
  end
  conn.server = f.server:gsub("/+$", "")
  local ca_file, ca_data = f["certificate-authority"], f["certificate-authority-data"]
  if ca_file and ca_data then
    return invalid(where .. ": both 'certificate-authority' and 'certificate-authority-data' are set")
  end
  if insecure and (ca_file or ca_data) then
    return invalid(where .. ": a certificate authority and 'insecure-skip-tls-verify' cannot both be set")
  end
  if ca_file then
    conn.ca_file = resolve_path(dir, ca_file)
    if not exists(d, conn.ca_file) then
      return invalid(where .. ": certificate-authority file " .. conn.ca_file .. " not found")
    end
  elseif ca_data then
    conn.ca_pem, msg = decode_data(d, ca_data, "certificate-authority-data", where)
    if not conn.ca_pem then
      return nil, msg, "invalid_config"
    end
  end
  conn.insecure = insecure or nil
  -- Recorded for the exec plugin's cluster info, not (yet) applied: host.http
  -- has no SNI override and no per-client proxy option.
  conn.tls_server_name = f["tls-server-name"]
  conn.proxy_url = f["proxy-url"]
  if conn.tls_server_name then
    d.log.warn("kubeconfig: tls-server-name is not supported and is ignored", { cluster = where })
  end
  if conn.proxy_url then
    d.log.warn("kubeconfig: proxy-url is not supported and is ignored", { cluster = where })
  end
  return true, f
end

local function exec_env(r, list, where)
  local env = {}
  for i, item in ipairs(list or {}) do
    local f = type(item) == "table" and r.strings(item, { "name", "value" }, where .. " exec env")
    if not f or not f.name or f.name:find("=", 1, true) then
      return invalid(string.format("%s: exec env[%d] must have a name (without '=') and a string value", where, i))
    end
    env[#env + 1] = { name = f.name, value = f.value or "" }
  end
  return env
end

local function exec_args(list, where)
  local args = {}
  for i, arg in ipairs(list or {}) do
    if type(arg) ~= "string" or arg:find("\0", 1, true) then
      return invalid(string.format("%s: exec args[%d] must be a string without NUL", where, i))
    end
    args[i] = arg
  end
  return args
end

-- The "cluster" part of KUBERNETES_EXEC_INFO (client-go's ConfigToExecCluster).
local function exec_cluster(d, r, conn, cluster, fields, where)
  local ca_data = fields["certificate-authority-data"]
  if not ca_data and conn.ca_file then
    local pem, err = d.fs.read_file(conn.ca_file, MAX_SMALL_FILE_BYTES)
    if not pem then
      return invalid(string.format("%s: cannot read %s: %s", where, conn.ca_file, err or "?"))
    end
    ca_data = d.base64_encode(pem)
  end
  local info = {
    server = conn.server,
    ["tls-server-name"] = conn.tls_server_name,
    ["insecure-skip-tls-verify"] = conn.insecure,
    ["certificate-authority-data"] = ca_data,
    ["proxy-url"] = conn.proxy_url,
  }
  local extensions = r.value(cluster, "extensions", "table", where)
  for _, ext in ipairs(extensions or {}) do
    if type(ext) == "table" and ext.name == EXEC_CLUSTER_EXTENSION then
      info.config = ext.extension
    end
  end
  return info
end

local function add_exec(r, conn, exec, dir, where)
  local f, err = r.strings(exec, { "apiVersion", "command", "interactiveMode", "installHint" }, where .. " exec")
  if not f then
    return invalid(err)
  end
  if not f.apiVersion or not EXEC_API_VERSIONS[f.apiVersion] then
    return invalid(string.format("%s: exec apiVersion %q is not supported (use client.authentication.k8s.io/v1"
      .. " or v1beta1)", where, f.apiVersion or ""))
  end
  if not f.command then
    return invalid(where .. ": exec 'command' is not set")
  end
  local mode = f.interactiveMode
  if not mode and f.apiVersion == "client.authentication.k8s.io/v1" then
    return invalid(where .. ": exec 'interactiveMode' must be set for client.authentication.k8s.io/v1")
  end
  if mode == "Always" then
    return invalid(where .. ": exec interactiveMode Always needs a terminal, and a server has none")
  end
  if mode and mode ~= "Never" and mode ~= "IfAvailable" then
    return invalid(string.format("%s: exec interactiveMode %q is not one of Never, IfAvailable, Always", where, mode))
  end
  local list, args, env, provide
  list, err = r.value(exec, "args", "table", where .. " exec")
  if err then
    return invalid(err)
  end
  args, err = exec_args(list, where)
  if not args then
    return nil, err, "invalid_config"
  end
  list, err = r.value(exec, "env", "table", where .. " exec")
  if err then
    return invalid(err)
  end
  env, err = exec_env(r, list, where)
  if not env then
    return nil, err, "invalid_config"
  end
  provide, err = r.value(exec, "provideClusterInfo", "boolean", where .. " exec")
  if err then
    return invalid(err)
  end
  -- Like client-go: a command with a slash is relative to the kubeconfig's
  -- directory; a bare name is looked up in PATH.
  local command = f.command
  if command:find("/", 1, true) then
    command = resolve_path(dir, command)
  end
  conn.exec = {
    api_version = f.apiVersion,
    command = command,
    args = args,
    env = env,
    provide_cluster_info = provide or false,
    install_hint = f.installHint,
  }
  return true
end

local function add_client_cert(d, r, conn, user, dir, where)
  local f, err = r.strings(user, {
    "client-certificate", "client-certificate-data", "client-key", "client-key-data",
  }, where)
  if not f then
    return invalid(err)
  end
  local cert_file, cert_data = f["client-certificate"], f["client-certificate-data"]
  local key_file, key_data = f["client-key"], f["client-key-data"]
  if cert_file and cert_data or key_file and key_data then
    return invalid(where .. ": both the file and the -data form of the client certificate or key are set")
  end
  local has_cert, has_key = cert_file or cert_data, key_file or key_data
  if (has_cert and not has_key) or (has_key and not has_cert) then
    return invalid(where .. ": a client certificate needs a key, and a key needs a certificate")
  end
  conn.client_cert_file = cert_file and resolve_path(dir, cert_file)
  conn.client_key_file = key_file and resolve_path(dir, key_file)
  for _, path in ipairs({ conn.client_cert_file or false, conn.client_key_file or false }) do
    if path and not exists(d, path) then
      return invalid(where .. ": client certificate or key file " .. path .. " not found")
    end
  end
  local msg
  if cert_data then
    conn.client_cert_pem, msg = decode_data(d, cert_data, "client-certificate-data", where)
    if not conn.client_cert_pem then
      return nil, msg, "invalid_config"
    end
  end
  if key_data then
    conn.client_key_pem, msg = decode_data(d, key_data, "client-key-data", where)
    if not conn.client_key_pem then
      return nil, msg, "invalid_config"
    end
  end
  return true
end

local function add_user(d, r, conn, user, dir, where)
  if type(user["auth-provider"]) == "table" then
    return invalid(where .. ": auth-provider plugins are not supported; use exec")
  end
  for _, key in ipairs({ "as", "as-uid", "as-groups", "as-user-extra" }) do
    if type(user[key]) == "string" and user[key] ~= "" or type(user[key]) == "table" and next(user[key]) then
      return invalid(where .. ": impersonation ('" .. key .. "') is not supported")
    end
  end
  local ok, err, code = add_client_cert(d, r, conn, user, dir, where)
  if not ok then
    return nil, err, code
  end
  local f
  f, err = r.strings(user, { "token", "tokenFile", "username", "password" }, where)
  if not f then
    return invalid(err)
  end
  if f.token and f.token:find("%c") then
    return invalid(where .. ": 'token' holds a control character; it cannot be sent in a header")
  end
  conn.token = f.token
  conn.token_file = f.tokenFile and resolve_path(dir, f.tokenFile)
  if f.username or f.password then
    conn.basic = { username = f.username or "", password = f.password or "" }
  end
  if (conn.token or conn.token_file) and conn.basic then
    return invalid(where .. ": more than one authentication method (token and username/password)")
  end
  local exec
  exec, err = r.value(user, "exec", "table", where)
  if err then
    return invalid(err)
  end
  if not exec then
    return true
  end
  if conn.token or conn.token_file or conn.basic or conn.client_cert_file or conn.client_cert_pem then
    -- client-go: static credentials win over an exec plugin.
    d.log.warn("kubeconfig: exec plugin ignored, the user has static credentials", { user = where })
    return true
  end
  return add_exec(r, conn, exec, dir, where)
end

local function from_kubeconfig(d, path, context_name)
  local text, err, code = d.fs.read_file(path, MAX_CONFIG_BYTES)
  if not text then
    if code == "not_found" then
      return nil, "kubeconfig " .. path .. " not found", "not_found"
    end
    return invalid(string.format("kubeconfig %s: %s", path, err or code or "cannot read"))
  end
  local doc
  doc, err = d.yaml.decode(text)
  if type(doc) ~= "table" then
    return invalid(string.format("kubeconfig %s: %s", path, doc == nil and (err or "not YAML") or "not a mapping"))
  end
  local r = reader(d.yaml.null)
  local name = context_name
  if not name then
    name, err = r.value(doc, "current-context", "string", "kubeconfig")
    if err then
      return invalid(err)
    end
    if not name then
      return invalid("kubeconfig " .. path .. ": no current-context and no --context")
    end
  end
  local lists = {}
  for _, kind in ipairs({ "context", "cluster", "user" }) do
    local key = kind .. "s"
    lists[key], err = r.named(doc, key, kind)
    if not lists[key] then
      return invalid(string.format("kubeconfig %s: %s", path, err))
    end
  end
  local contexts, clusters, users = lists.contexts, lists.clusters, lists.users
  local context = contexts[name]
  if not context then
    return invalid(string.format("kubeconfig %s: context %q not found", path, name))
  end
  local ref
  ref, err = r.strings(context, { "cluster", "user", "namespace" }, string.format("context %q", name))
  if not ref then
    return invalid(err)
  end
  if not ref.cluster or not clusters[ref.cluster] then
    return invalid(string.format("kubeconfig %s: cluster %q of context %q not found", path, ref.cluster or "", name))
  end
  if ref.user and not users[ref.user] then
    return invalid(string.format("kubeconfig %s: user %q of context %q not found", path, ref.user, name))
  end
  local dir = dirname(path)
  local conn = { namespace = ref.namespace or "default", source = "kubeconfig:" .. path }
  local cluster = clusters[ref.cluster]
  local ok, fields
  ok, fields, code = add_cluster(d, r, conn, cluster, dir, string.format("cluster %q", ref.cluster))
  if not ok then
    return nil, fields, code
  end
  if ref.user then
    ok, err, code = add_user(d, r, conn, users[ref.user], dir, string.format("user %q", ref.user))
    if not ok then
      return nil, err, code
    end
  end
  if conn.exec and conn.exec.provide_cluster_info then
    conn.exec.cluster, err, code = exec_cluster(d, r, conn, cluster, fields, string.format("cluster %q", ref.cluster))
    if not conn.exec.cluster then
      return nil, err, code
    end
  end
  return conn
end

local function in_cluster(d, root)
  local host, port = d.getenv("KUBERNETES_SERVICE_HOST"), d.getenv("KUBERNETES_SERVICE_PORT")
  if not host or host == "" or not port or port == "" then
    return nil, "in-cluster (KUBERNETES_SERVICE_HOST/PORT not set)"
  end
  local token_file = root .. "/token"
  if not exists(d, token_file) then
    return nil, "in-cluster (" .. token_file .. " not found)"
  end
  if host:find(":", 1, true) then
    host = "[" .. host .. "]"
  end
  local conn = { server = "https://" .. host .. ":" .. port, token_file = token_file, source = "in-cluster" }
  local ca_file = root .. "/ca.crt"
  if exists(d, ca_file) then
    conn.ca_file = ca_file
  else
    -- As client-go: without the CA file the system trust store is used.
    d.log.warn("in-cluster CA file not found; using the system trust store", { path = ca_file })
  end
  local namespace = d.getenv("POD_NAMESPACE")
  if not namespace or namespace == "" then
    namespace = d.fs.read_file(root .. "/namespace", MAX_SMALL_FILE_BYTES)
    namespace = namespace and trim(namespace)
  end
  conn.namespace = (namespace and namespace ~= "") and namespace or "default"
  return conn
end

--- Finds the API server and the credentials to use.
-- @tparam table opts { kubeconfig = path?, context = name?, in_cluster_root = path? }
-- @tparam[opt] table deps { fs, yaml, getenv, base64_decode, base64_encode, log }
--   (defaults: host.fs, host.yaml, os.getenv, host.crypto, host.log)
-- @return connection table, or nil, message, code ("not_found" | "invalid_config")
function kubeconfig.resolve(opts, deps)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("infraops.k8s.kubeconfig.resolve: opts must be a table", 2)
  end
  local d = defaults(deps)
  if opts.kubeconfig and opts.kubeconfig ~= "" then
    return from_kubeconfig(d, opts.kubeconfig, opts.context)
  end
  local tried = {}
  -- A --context names a kubeconfig entry: the user wants a kubeconfig then.
  if not opts.context then
    local conn, why = in_cluster(d, opts.in_cluster_root or kubeconfig.IN_CLUSTER_ROOT)
    if conn then
      return conn
    end
    tried[#tried + 1] = why
  end
  local candidates = {}
  local env = d.getenv("KUBECONFIG")
  if env and env ~= "" then
    -- client-go merges every listed file; we use the first that exists. As in
    -- client-go, a set KUBECONFIG replaces ~/.kube/config.
    for path in env:gmatch("[^:]+") do
      candidates[#candidates + 1] = path
    end
  else
    local home = d.getenv("HOME")
    if home and home ~= "" then
      candidates[1] = home:gsub("/+$", "") .. "/.kube/config"
    else
      tried[#tried + 1] = "$HOME/.kube/config (HOME not set)"
    end
  end
  for _, path in ipairs(candidates) do
    if exists(d, path) then
      return from_kubeconfig(d, path, opts.context)
    end
    tried[#tried + 1] = path .. (env and env ~= "" and " (from KUBECONFIG)" or "")
  end
  return nil, "no Kubernetes API configuration found; tried: " .. table.concat(tried, ", "), "not_found"
end

return kubeconfig
