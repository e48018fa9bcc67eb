-- Who is asking. For now: a client certificate that verified against the
-- client CA names the user (CN) and groups (O values), as kube's x509
-- authenticator does; anyone else is system:anonymous. Request-header
-- (front-proxy) identities and bearer tokens are not trusted yet, so their
-- headers are ignored.
local authn = {}

--- The user for a request: { name, groups, extra, authenticated }.
-- @tparam table peer req.peer from the host
function authn.identify(peer)
  if peer and peer.verified_client_ca and peer.common_name and peer.common_name ~= "" then
    local groups = {}
    for i, o in ipairs(peer.organizations or {}) do
      groups[i] = o
    end
    groups[#groups + 1] = "system:authenticated"
    return {
      name = peer.common_name,
      groups = groups,
      extra = { ["authentication.kubernetes.io/credential-id"] = { "X509SHA256=" .. peer.sha256 } },
      authenticated = true,
    }
  end
  return { name = "system:anonymous", groups = { "system:unauthenticated" }, extra = {}, authenticated = false }
end

return authn
