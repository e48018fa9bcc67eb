-- infraops.authn (lua/infraops/authn.lua): the user behind a request, from
-- the peer table the host builds (host/script_runtime.c push_peer).
local authn = require("infraops.authn")

local SHA = string.rep("ab", 32)

local function verified_alice()
  return {
    presented = true,
    verified_client_ca = true,
    verified_requestheader = false,
    common_name = "alice",
    organizations = { "dev", "ops" },
    sha256 = SHA,
  }
end

local function assert_anonymous(user)
  assert.are.equal("system:anonymous", user.name)
  assert.are.same({ "system:unauthenticated" }, user.groups)
  assert.are.same({}, user.extra)
  assert.is_false(user.authenticated)
end

describe("infraops.authn", function()
  describe("identify()", function()
    it("names a peer verified against the client CA by its CN and O values", function()
      local user = authn.identify(verified_alice())
      assert.are.equal("alice", user.name)
      assert.are.same({ "dev", "ops", "system:authenticated" }, user.groups)
      assert.are.same({ ["authentication.kubernetes.io/credential-id"] = { "X509SHA256=" .. SHA } }, user.extra)
      assert.is_true(user.authenticated)
    end)

    it("gives a verified peer without O values only system:authenticated", function()
      local peer = verified_alice()
      peer.organizations = {}
      assert.are.same({ "system:authenticated" }, authn.identify(peer).groups)
    end)

    it("does not modify the peer's organizations", function()
      local peer = verified_alice()
      authn.identify(peer)
      assert.are.same({ "dev", "ops" }, peer.organizations)
    end)

    it("treats a peer verified only against the requestheader CA as anonymous", function()
      local peer = verified_alice()
      peer.verified_client_ca = false
      peer.verified_requestheader = true
      peer.common_name = "front-proxy-client"
      assert_anonymous(authn.identify(peer))
    end)

    it("treats an unverified peer as anonymous", function()
      local peer = { presented = true, verified_client_ca = false, verified_requestheader = false }
      assert_anonymous(authn.identify(peer))
    end)

    it("treats an unverified peer carrying names as anonymous", function()
      local peer = verified_alice()
      peer.verified_client_ca = false
      assert_anonymous(authn.identify(peer))
    end)

    it("treats a connection without a certificate as anonymous", function()
      local peer = { presented = false, verified_client_ca = false, verified_requestheader = false }
      assert_anonymous(authn.identify(peer))
    end)

    it("treats a nil peer as anonymous", function()
      assert_anonymous(authn.identify(nil))
    end)

    it("treats a verified peer with an empty CN as anonymous", function()
      local peer = verified_alice()
      peer.common_name = ""
      assert_anonymous(authn.identify(peer))
    end)

    it("treats a verified peer without a CN as anonymous", function()
      local peer = verified_alice()
      peer.common_name = nil
      assert_anonymous(authn.identify(peer))
    end)

    it("returns fresh tables for each anonymous user", function()
      local a = authn.identify(nil)
      a.groups[#a.groups + 1] = "tampered"
      assert.are.same({ "system:unauthenticated" }, authn.identify(nil).groups)
    end)
  end)
end)
